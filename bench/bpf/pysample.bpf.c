// In-kernel CPython stack sampler (prototype): runs on a CPU-clock perf event on every CPU,
// and when the interrupted task is a thread of the target, walks its Python frames from the
// thread state userspace mapped for its tid, and writes the code-object pointers to a ring
// buffer without waking the reader. Offsets come from the loader (spyglass's Layout).
#include <linux/bpf.h>
#include <linux/bpf_perf_event.h>
#include <bpf/bpf_helpers.h>

#include "pysample.h"

typedef __u64 u64;
typedef __u32 u32;
typedef signed char s8;

// Set by the loader before load (read-only: the verifier sees them as constants).
const volatile __u32 target_tgid = 0;
const volatile __u32 use_cframe = 0;           // 3.11-3.12: tstate->cframe->current_frame
const volatile __u32 tstate_frame_off = 0;     // 3.12: cframe; 3.13+: current_frame
const volatile __u32 cframe_current_off = 0;   // 3.12: _PyCFrame.current_frame
const volatile __u32 frame_previous_off = 8;
const volatile __u32 frame_code_off = 0;
const volatile __u32 frame_owner_off = 70;
const volatile int owner_cstack = -1;        // FRAME_OWNED_BY_CSTACK (skipped), -1: none
const volatile int owner_interpreter = -1;   // 3.14+: FRAME_OWNED_BY_INTERPRETER (skipped)
const volatile __u32 code_tagged = 0;          // 3.14+: f_executable is a _PyStackRef

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, u32);    // kernel tid
  __type(value, u64);  // PyThreadState address in the target
} tstates SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, CNT_MAX);
  __type(key, u32);
  __type(value, u64);
} counters SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 16 << 20);
} samples SEC(".maps");

static __always_inline void count(u32 which) {
  u64* v = bpf_map_lookup_elem(&counters, &which);
  if (v) *v += 1;
}

// Offsets are checked by the loader (each field inside the bytes read); the clamp is for the
// verifier, which sees the read-only offsets as constants anyway.
// The event is built in a per-CPU scratch slot, then copied to the ring buffer at the size the
// walk filled (bpf_ringbuf_output): a shallow stack takes little room.
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, u32);
  __type(value, struct pysample_event);
} scratch SEC(".maps");

#define FRAME_WORDS (PYSAMPLE_FRAME_READ / 8)

struct walk {
  struct pysample_event* e;
  u64 frame;
  u32 depth;
  u32 flags;
};

// One frame a call (bpf_loop: the verifier checks the body once, not once per iteration).
static long walk_one(u32 index, void* arg) {
  struct walk* w = arg;
  if (!w->frame) {
    w->flags = SAMPLE_COMPLETE;
    return 1;
  }
  if (w->depth >= PYSAMPLE_MAX_DEPTH) {
    w->flags = SAMPLE_CUT;
    return 1;
  }
  u64 buf[FRAME_WORDS];
  if (bpf_probe_read_user(buf, sizeof buf, (void*)w->frame)) {
    w->flags = SAMPLE_READ_FAILED;
    return 1;
  }
  // Offsets are checked by the loader (8-byte fields 8-aligned, all inside the bytes read); the
  // clamps are for the verifier.
  u32 owner_off = frame_owner_off;
  if (owner_off > PYSAMPLE_FRAME_READ - 1) owner_off = PYSAMPLE_FRAME_READ - 1;
  int owner = ((s8*)buf)[owner_off];
  if (owner != owner_cstack && owner != owner_interpreter) {
    u32 k = frame_code_off / 8;
    if (k >= FRAME_WORDS) k = 0;
    u64 code = buf[k];
    if (code_tagged) code &= ~3ULL;
    w->e->codes[w->depth & (PYSAMPLE_MAX_DEPTH - 1)] = code;
    w->depth++;
  }
  u32 k = frame_previous_off / 8;
  if (k >= FRAME_WORDS) k = 0;
  u64 previous = buf[k];
  if (previous == w->frame) {  // a torn read; never a real chain
    w->flags = SAMPLE_READ_FAILED;
    return 1;
  }
  w->frame = previous;
  return 0;
}

SEC("perf_event")
int sample(struct bpf_perf_event_data* ctx) {
  count(CNT_EVENTS);
  u64 id = bpf_get_current_pid_tgid();
  if ((u32)(id >> 32) != target_tgid) return 0;
  count(CNT_IN_TARGET);
  u32 tid = (u32)id;
  u64* tstate = bpf_map_lookup_elem(&tstates, &tid);
  if (!tstate) {
    count(CNT_NO_TSTATE);
    return 0;
  }
  u64 frame = 0;
  if (use_cframe) {
    u64 cframe = 0;
    if (bpf_probe_read_user(&cframe, sizeof cframe, (void*)(*tstate + tstate_frame_off)) ||
        (cframe && bpf_probe_read_user(&frame, sizeof frame, (void*)(cframe + cframe_current_off)))) {
      count(CNT_READ_FAILED);
      return 0;
    }
  } else if (bpf_probe_read_user(&frame, sizeof frame, (void*)(*tstate + tstate_frame_off))) {
    count(CNT_READ_FAILED);
    return 0;
  }
  if (!frame) {
    count(CNT_NO_FRAME);
    return 0;
  }
  u32 zero = 0;
  struct pysample_event* e = bpf_map_lookup_elem(&scratch, &zero);
  if (!e) return 0;
  struct walk w = {.e = e, .frame = frame, .depth = 0, .flags = 0};
  bpf_loop(PYSAMPLE_MAX_VISITS, walk_one, &w, 0);
  if (!w.flags) w.flags = SAMPLE_CUT;  // ran out of visits
  count(w.flags == SAMPLE_COMPLETE ? CNT_WALK_DONE
        : w.flags == SAMPLE_CUT    ? CNT_WALK_CUT
                                   : CNT_READ_FAILED);
  e->tid = tid;
  e->ts = bpf_ktime_get_ns();
  e->flags = w.flags;
  u32 depth = w.depth;
  if (depth > PYSAMPLE_MAX_DEPTH) depth = PYSAMPLE_MAX_DEPTH;
  e->depth = depth;
  u64 size = 16 + (u64)depth * 8;  // offsetof(codes) + the codes filled
  if (size > sizeof *e) size = sizeof *e;
  if (bpf_ringbuf_output(&samples, e, size, BPF_RB_NO_WAKEUP)) count(CNT_RB_FULL);
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
