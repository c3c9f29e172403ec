#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "common/error.h"
#include "process/maps.h"

namespace spyglass::process {
namespace {

// Never a PID: above the kernel's largest pid_max (4194304).
constexpr pid_t kImpossiblePid = 0x7ffffff0;

TEST(ParseMaps, ReadsAllFields) {
  auto maps = parse_maps(
      "55d0c6a00000-55d0c6a21000 r-xp 00002000 fd:01 1234567                    "
      "/usr/bin/python3.11\n");
  ASSERT_EQ(maps.size(), 1u);
  EXPECT_EQ(maps[0].start, 0x55d0c6a00000u);
  EXPECT_EQ(maps[0].end, 0x55d0c6a21000u);
  EXPECT_TRUE(maps[0].readable);
  EXPECT_FALSE(maps[0].writable);
  EXPECT_TRUE(maps[0].executable);
  EXPECT_EQ(maps[0].offset, 0x2000u);
  EXPECT_EQ(maps[0].inode, 1234567u);
  EXPECT_EQ(maps[0].path, "/usr/bin/python3.11");
  EXPECT_FALSE(maps[0].deleted);
  EXPECT_EQ(maps[0].size(), 0x21000u);
  EXPECT_TRUE(maps[0].contains(0x55d0c6a00000u));
  EXPECT_FALSE(maps[0].contains(0x55d0c6a21000u));
}

TEST(ParseMaps, KeepsSpacesInPathsAndSpecialNames) {
  auto maps = parse_maps(
      "7f0000000000-7f0000001000 rw-p 00000000 00:00 0 \n"
      "7f0000001000-7f0000002000 r--p 00001000 08:02 42   /opt/my app/lib python.so\n"
      "7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]\n"
      "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n"
      "7f0000003000-7f0000004000 rw-p 00000000 00:00 0");  // no newline at the end
  ASSERT_EQ(maps.size(), 5u);
  EXPECT_EQ(maps[0].path, "");
  EXPECT_EQ(maps[1].path, "/opt/my app/lib python.so");
  EXPECT_EQ(maps[2].path, "[stack]");
  EXPECT_EQ(maps[3].start, 0xffffffffff600000u);
  EXPECT_FALSE(maps[3].readable);
  EXPECT_TRUE(maps[3].executable);
  EXPECT_EQ(maps[4].path, "");
  EXPECT_EQ(maps[4].start, 0x7f0000003000u);
}

TEST(ParseMaps, StripsDeletedSuffix) {
  auto maps = parse_maps(
      "7f0000001000-7f0000002000 r-xp 00000000 08:02 42 /tmp/libpython3.12.so.1.0 (deleted)\n"
      "7f0000002000-7f0000003000 r-xp 00000000 08:02 43 /tmp/odd name (deleted) here\n");
  ASSERT_EQ(maps.size(), 2u);
  EXPECT_EQ(maps[0].path, "/tmp/libpython3.12.so.1.0");
  EXPECT_TRUE(maps[0].deleted);
  EXPECT_EQ(maps[1].path, "/tmp/odd name (deleted) here");
  EXPECT_FALSE(maps[1].deleted);
}

TEST(ParseMaps, SkipsMalformedLines) {
  auto maps = parse_maps(
      "\n"
      "garbage\n"
      "7f0000001000 r-xp 00000000 08:02 42 /no/dash\n"
      "7f0000002000-7f0000001000 r-xp 00000000 08:02 42 /end/before/start\n"
      "7f00000zz000-7f0000003000 r-xp 00000000 08:02 42 /bad/hex\n"
      "7f0000001000-7f0000002000 r-xp 0000000g 08:02 42 /bad/offset\n"
      "7f0000001000-7f0000002000 r-xp 00000000 08:02 4x2 /bad/inode\n"
      "7f0000001000-7f0000002000 r- 00000000 08:02 42 /short/perms\n"
      "7f0000001000-7f0000002000 r-xp 00000000\n"
      "7f0000001000-7f0000002000 r-xp 00000000 0802 42 /bad/device\n"
      "7f0000005000-7f0000006000 r--p 00000000 08:02 42 /good\n"
      "-\n"
      "99999999999999999999-1 r--p 0 0:0 0\n");
  ASSERT_EQ(maps.size(), 1u);
  EXPECT_EQ(maps[0].path, "/good");
  EXPECT_TRUE(parse_maps("").empty());
}

TEST(ReadMaps, FindsOwnCodeAndStack) {
  auto maps = read_maps(getpid());
  ASSERT_FALSE(maps.empty());
  auto code = reinterpret_cast<uint64_t>(&parse_maps);
  // The frame address, not a local's: under ASan's detect_stack_use_after_return (make sanitize)
  // locals whose address is taken live on a heap-allocated fake stack.
  auto stack = reinterpret_cast<uint64_t>(__builtin_frame_address(0));
  auto find = [&](uint64_t addr) {
    return std::find_if(maps.begin(), maps.end(),
                        [&](const Mapping& m) { return m.contains(addr); });
  };
  auto code_map = find(code);
  ASSERT_NE(code_map, maps.end());
  EXPECT_TRUE(code_map->executable);
  EXPECT_FALSE(code_map->path.empty());
  auto stack_map = find(stack);
  ASSERT_NE(stack_map, maps.end());
  EXPECT_EQ(stack_map->path, "[stack]");
  EXPECT_TRUE(stack_map->writable);
}

TEST(ReadMaps, MissingProcessIsNoSuchProcess) {
  try {
    read_maps(kImpossiblePid);
    FAIL() << "expected an Error";
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::kNoSuchProcess);
    EXPECT_NE(std::string(error.what()).find("does not exist"), std::string::npos) << error.what();
  }
}

TEST(Threads, ListsAllThreadsAndTheirState) {
  std::atomic<pid_t> worker_tid{0};
  std::atomic<bool> stop{false};
  std::thread worker([&] {
    pthread_setname_np(pthread_self(), "spy worker)x");
    worker_tid = gettid();
    while (!stop) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  while (worker_tid == 0) std::this_thread::yield();
  // The name is set before the tid is published.
  auto threads = list_threads(getpid());
  EXPECT_TRUE(std::is_sorted(threads.begin(), threads.end()));
  EXPECT_NE(std::find(threads.begin(), threads.end(), getpid()), threads.end());
  EXPECT_NE(std::find(threads.begin(), threads.end(), worker_tid.load()), threads.end());
  EXPECT_EQ(read_thread_name(getpid(), worker_tid), "spy worker)x");

  auto self = read_thread_stat(getpid(), gettid());
  ASSERT_TRUE(self.has_value());
  EXPECT_EQ(self->state, 'R');  // reading its own stat, so running
  EXPECT_EQ(self->ppid, static_cast<uint64_t>(getppid()));
  auto other = read_thread_stat(getpid(), worker_tid);
  ASSERT_TRUE(other.has_value());
  EXPECT_NE(other->state, '?');
  stop = true;
  worker.join();

  EXPECT_TRUE(list_threads(kImpossiblePid).empty());
  EXPECT_FALSE(read_thread_stat(kImpossiblePid, kImpossiblePid).has_value());
  EXPECT_EQ(read_thread_name(kImpossiblePid, kImpossiblePid), "");
}

TEST(ParseStat, UsesTheLastParenthesis) {
  auto stat = parse_stat("4242 (a) b) S (c) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 20 0 1 0 100 0 0\n");
  ASSERT_TRUE(stat.has_value());
  EXPECT_EQ(stat->state, 'R');
  EXPECT_EQ(stat->ppid, 1u);
  EXPECT_EQ(stat->utime_ticks, 11u);
  EXPECT_EQ(stat->stime_ticks, 12u);
  EXPECT_EQ(stat->start_ticks, 100u);

  auto spaces = parse_stat("7 ( ) S 1 1 1 0 -1 4194560 5 0 0 0 123 456 0 0 20 0 1 0 9 0 0");
  ASSERT_TRUE(spaces.has_value());
  EXPECT_EQ(spaces->state, 'S');
  EXPECT_EQ(spaces->ppid, 1u);
  EXPECT_EQ(spaces->utime_ticks, 123u);
  EXPECT_EQ(spaces->stime_ticks, 456u);
  EXPECT_EQ(spaces->start_ticks, 9u);

  auto empty_comm = parse_stat("7 () Z 1 1 1 0 -1 4194560 5 0 0 0 0 0");
  ASSERT_TRUE(empty_comm.has_value());
  EXPECT_EQ(empty_comm->state, 'Z');
  EXPECT_EQ(empty_comm->start_ticks, 0u);  // the text stops before the start time
  EXPECT_EQ(empty_comm->processor, -1);
}

TEST(ParseStat, ReadsTheProcessor) {
  // A line of a 6.x kernel: the processor is field 39, after the parenthesized name.
  auto stat = parse_stat(
      "23585 (cat) R 23582 23582 15882 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 3805411 3133440 "
      "394 18446744073709551615 94811186053120 94811186073001 140720990764592 0 0 0 0 0 0 0 0 0 "
      "17 3 0 0 0 0 0 94811186089008 94811186090624 94811973627904 140720990767802 "
      "140720990767822 140720990767822 140720990769131 0\n");
  ASSERT_TRUE(stat.has_value());
  EXPECT_EQ(stat->start_ticks, 3805411u);
  EXPECT_EQ(stat->processor, 3);
  auto own = read_thread_stat(getpid(), static_cast<pid_t>(syscall(SYS_gettid)));
  ASSERT_TRUE(own.has_value());
  EXPECT_GE(own->processor, 0);
}

TEST(ParseStat, RejectsMalformedText) {
  EXPECT_FALSE(parse_stat("").has_value());
  EXPECT_FALSE(parse_stat("1 noparens S 1 2 3").has_value());
  EXPECT_FALSE(parse_stat("1 (x) S 1 2 3").has_value());  // stops before utime/stime
  EXPECT_FALSE(parse_stat("1 (x) SS 1 2 3 4 5 6 7 8 9 10 11 12").has_value());
  EXPECT_FALSE(parse_stat("1 (x) S 1 2 3 4 5 6 7 8 9 10 -11 12").has_value());
  EXPECT_FALSE(parse_stat("1 (x) S 1 2 3 4 5 6 7 8 9 10").has_value());
  EXPECT_FALSE(parse_stat(") (x S 1 2 3 4 5 6 7 8 9 10 11 12").has_value());
}

TEST(ThreadName, CutCharactersAreDroppedAndBadBytesReplaced) {
  EXPECT_EQ(thread_name_as_utf8("worker-1"), "worker-1");
  EXPECT_EQ(thread_name_as_utf8("caf\xc3\xa9_\xc3\x9f"), "caf\xc3\xa9_\xc3\x9f");
  // 15 bytes cut inside a 3-byte character (the kernel's comm limit).
  EXPECT_EQ(thread_name_as_utf8("Thread-1 (\xe5\x90\x8d\xe5\x89"), "Thread-1 (\xe5\x90\x8d");
  EXPECT_EQ(thread_name_as_utf8("a\xff"
                                "b\x80"
                                "c"),
            "a?b?c");
  EXPECT_EQ(thread_name_as_utf8("\xe5\x90x"), "?x");
  EXPECT_EQ(thread_name_as_utf8(""), "");
}

TEST(Processes, ExistsAndRootPaths) {
  EXPECT_TRUE(process_exists(getpid()));
  EXPECT_FALSE(process_exists(0));
  EXPECT_FALSE(process_exists(-5));
  EXPECT_FALSE(process_exists(kImpossiblePid));

  std::string self = std::to_string(getpid());
  EXPECT_EQ(path_in_process_root(getpid(), "/proc/self/exe"),
            "/proc/" + self + "/root/proc/self/exe");
  EXPECT_EQ(path_in_process_root(getpid(), "relative/path"), "relative/path");
  EXPECT_EQ(path_in_process_root(getpid(), "/no/such/file/here"), "/no/such/file/here");
  EXPECT_EQ(path_in_process_root(kImpossiblePid, "/proc/self/exe"), "/proc/self/exe");
}

}  // namespace
}  // namespace spyglass::process

namespace spyglass::process {
namespace {

// Thread ids are listed once and kept: listed again for an id not held (a thread started
// since), at most once a walk, and once a second.
TEST(ThreadIds, ListedAgainOnlyForANewThreadOrWithAge) {
  ThreadIds ids(getpid());
  ids.begin_walk(0.0);
  EXPECT_EQ(ids.listings(), 1u);
  EXPECT_TRUE(ids.contains(static_cast<pid_t>(syscall(SYS_gettid))));
  ids.begin_walk(0.1);
  EXPECT_TRUE(ids.contains(getpid()));
  EXPECT_EQ(ids.listings(), 1u);

  std::atomic<pid_t> started{0};
  std::atomic<bool> stop{false};
  std::thread thread([&] {
    started = static_cast<pid_t>(syscall(SYS_gettid));
    while (!stop) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  while (started == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ids.begin_walk(0.2);
  EXPECT_TRUE(ids.contains(started));  // not in the list: listed again, and there
  EXPECT_EQ(ids.listings(), 2u);

  const pid_t no_thread = 0x7ffffff0;
  EXPECT_FALSE(ids.contains(no_thread));  // listed once this walk already
  ids.begin_walk(0.3);
  EXPECT_FALSE(ids.contains(no_thread));
  EXPECT_FALSE(ids.contains(no_thread));
  EXPECT_EQ(ids.listings(), 3u);  // once for the walk, not once a look

  stop = true;
  thread.join();
  ids.begin_walk(0.3 + ThreadIds::kMaxAgeSeconds);  // a second on: threads that ended go
  EXPECT_EQ(ids.listings(), 4u);
  EXPECT_FALSE(std::binary_search(ids.ids().begin(), ids.ids().end(), started.load()));
}

}  // namespace
}  // namespace spyglass::process
