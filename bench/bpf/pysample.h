// Shared between the BPF program (pysample.bpf.c) and its loader (loader.cpp).
#pragma once

#define PYSAMPLE_MAX_DEPTH 128
// Frames looked at per walk: the depth limit plus room for C-stack shim frames, which do not
// count as depth (one per C->Python call: a thread at depth 128 has a handful).
#define PYSAMPLE_MAX_VISITS 160
// Bytes read of each _PyInterpreterFrame (must cover previous, code, instr and owner).
#define PYSAMPLE_FRAME_READ 96

enum pysample_counter {
  CNT_EVENTS = 0,   // every perf event, any task (the program's whole run count)
  CNT_IN_TARGET,    // events that interrupted a thread of the target
  CNT_NO_TSTATE,    // ... whose tid is not (yet) in the tid->tstate map
  CNT_NO_FRAME,     // ... whose thread state has no current frame (no Python code running)
  CNT_WALK_DONE,    // walks that reached the thread's first frame
  CNT_WALK_CUT,     // walks cut short at the depth or visit limit
  CNT_READ_FAILED,  // walks ended by a failed bpf_probe_read_user (page not resident, ...)
  CNT_RB_FULL,      // samples dropped: the ring buffer had no room
  CNT_MAX,
};

enum pysample_flags {
  SAMPLE_COMPLETE = 1,
  SAMPLE_CUT = 2,
  SAMPLE_READ_FAILED = 4,
};

struct pysample_event {
  unsigned int tid;
  unsigned short depth;  // code pointers filled in codes[], innermost first
  unsigned short flags;
  unsigned long long ts;  // bpf_ktime_get_ns
  unsigned long long codes[PYSAMPLE_MAX_DEPTH];
};
