#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <vector>

#include "process/access.h"
#include "common/error.h"
#include "process/memory.h"

namespace spyglass::process {
namespace {

constexpr pid_t kImpossiblePid = 0x7ffffff0;

RemoteAddr addr_of(const void* pointer) {
  return reinterpret_cast<RemoteAddr>(pointer);
}

// Two pages: the first readable, the second PROT_NONE, so reads can fail at a known place.
class GuardedPages {
 public:
  GuardedPages() {
    page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    void* memory =
        mmap(nullptr, 2 * page_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) std::abort();
    base_ = static_cast<uint8_t*>(memory);
    for (size_t i = 0; i < page_; ++i) base_[i] = static_cast<uint8_t>(i * 7);
    mprotect(base_ + page_, page_, PROT_NONE);
  }
  ~GuardedPages() { munmap(base_, 2 * page_); }
  uint8_t* readable() const { return base_; }
  uint8_t* guard() const { return base_ + page_; }
  size_t page() const { return page_; }

 private:
  uint8_t* base_;
  size_t page_;
};

TEST(LiveMemory, ReadsOwnProcess) {
  std::vector<uint64_t> data(1000);
  std::iota(data.begin(), data.end(), 1);
  LiveMemory memory(getpid());
  std::vector<uint64_t> copy(1000);
  ASSERT_TRUE(memory.read(addr_of(data.data()), copy.data(), copy.size() * sizeof(uint64_t)));
  EXPECT_EQ(copy, data);
  uint64_t value = 0;
  ASSERT_TRUE(memory.read_value(addr_of(&data[41]), value));
  EXPECT_EQ(value, 42u);
  EXPECT_EQ(memory.calls(), 2u);
  EXPECT_TRUE(memory.read(0, nullptr, 0));  // nothing to read is a success
  EXPECT_NO_THROW(memory.check_access(addr_of(data.data())));
}

TEST(LiveMemory, FailsOnUnmappedMemory) {
  GuardedPages pages;
  LiveMemory memory(getpid());
  uint8_t buffer[32];
  EXPECT_FALSE(memory.read(addr_of(pages.guard()), buffer, 1));
  EXPECT_EQ(memory.last_error(), EFAULT);
  // Starts readable, runs into the guard page: still a failure.
  EXPECT_FALSE(memory.read(addr_of(pages.guard() - 16), buffer, 32));
  EXPECT_FALSE(memory.read(0, buffer, 8));
  EXPECT_FALSE(memory.read(~0ull - 4, buffer, 8));
  ASSERT_TRUE(memory.read(addr_of(pages.guard() - 16), buffer, 16));
  EXPECT_EQ(std::memcmp(buffer, pages.guard() - 16, 16), 0);
  try {
    memory.check_access(addr_of(pages.guard()));
    FAIL() << "expected an Error";
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::kIo);
  }
}

TEST(LiveMemory, BatchStopsAtTheFirstFailingRequest) {
  GuardedPages pages;
  uint64_t a = 0, b = 0, c = 0, d = 0;
  uint8_t straddling[16];
  uint64_t source[4] = {11, 22, 33, 44};
  LiveMemory memory(getpid());

  std::vector<ReadRequest> requests = {
      {addr_of(&source[0]), &a, 8},
      {addr_of(&source[1]), &b, 8},
      {addr_of(pages.guard()), &c, 8},  // fails
      {addr_of(&source[3]), &d, 8},
  };
  EXPECT_EQ(memory.read_batch(requests), 2u);
  EXPECT_EQ(memory.calls(), 1u);
  EXPECT_EQ(a, 11u);
  EXPECT_EQ(b, 22u);

  // A request that starts readable and runs into the guard page is not complete either.
  std::vector<ReadRequest> partial = {
      {addr_of(&source[2]), &c, 8},
      {addr_of(pages.guard() - 8), straddling, 16},
      {addr_of(&source[3]), &d, 8},
  };
  EXPECT_EQ(memory.read_batch(partial), 1u);
  EXPECT_EQ(c, 33u);

  // First request fails: nothing completes (the system call returns -1, EFAULT).
  std::vector<ReadRequest> first_fails = {{0, &a, 8}, {addr_of(&source[3]), &d, 8}};
  EXPECT_EQ(memory.read_batch(first_fails), 0u);
  EXPECT_EQ(memory.last_error(), EFAULT);

  // Empty requests complete without reading; an empty batch is complete.
  std::vector<ReadRequest> with_empty = {
      {addr_of(&source[0]), &a, 0}, {addr_of(&source[3]), &d, 8}, {0, nullptr, 0}};
  EXPECT_EQ(memory.read_batch(with_empty), 3u);
  EXPECT_EQ(d, 44u);
  EXPECT_EQ(memory.read_batch({}), 0u);
}

TEST(LiveMemory, BatchLargerThanIovMaxIsSplit) {
  const size_t count = 2 * IOV_MAX + 10;
  std::vector<uint32_t> source(count), target(count, 0);
  std::iota(source.begin(), source.end(), 100);
  std::vector<ReadRequest> requests;
  // Read in reverse order, so each request is its own iovec.
  for (size_t i = 0; i < count; ++i) {
    requests.push_back({addr_of(&source[count - 1 - i]), &target[i], sizeof(uint32_t)});
  }
  LiveMemory memory(getpid());
  ASSERT_EQ(memory.read_batch(requests), count);
  EXPECT_EQ(memory.calls(), 3u);
  for (size_t i = 0; i < count; ++i) ASSERT_EQ(target[i], source[count - 1 - i]) << i;

  // A failure in the second system call: the count includes the whole first chunk.
  GuardedPages pages;
  requests[IOV_MAX + 5].addr = addr_of(pages.guard());
  EXPECT_EQ(memory.read_batch(requests), static_cast<size_t>(IOV_MAX + 5));
}

// A fork whose copy of `buffer` is changed after the fork, so only reading the child's
// memory gives the new bytes.
TEST(LiveMemory, ReadsChildProcess) {
  static char buffer[64] = "parent bytes";
  int ready[2];
  int release[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(release), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(release[1]);
    close(ready[0]);
    std::strcpy(buffer, "child bytes, changed after the fork");
    char byte = 1;
    if (write(ready[1], &byte, 1) != 1) _exit(1);
    if (read(release[0], &byte, 1) < 0) _exit(1);  // returns when the parent closes its end
    _exit(0);
  }
  close(ready[1]);
  close(release[0]);
  char byte;
  ASSERT_EQ(read(ready[0], &byte, 1), 1);

  LiveMemory memory(child);
  EXPECT_NO_THROW(memory.check_access(addr_of(buffer)));
  char copy[64] = {};
  ASSERT_TRUE(memory.read(addr_of(buffer), copy, sizeof(copy)));
  EXPECT_STREQ(copy, "child bytes, changed after the fork");
  EXPECT_STREQ(buffer, "parent bytes");

  close(release[1]);
  close(ready[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

  // Now it is gone (reaped): reads fail with ESRCH and check_access says so.
  EXPECT_FALSE(memory.read(addr_of(buffer), copy, 8));
  try {
    memory.check_access(addr_of(buffer));
    FAIL() << "expected an Error";
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::kNoSuchProcess);
  }
}

TEST(LiveMemory, CheckAccessOnMissingProcess) {
  LiveMemory memory(kImpossiblePid);
  try {
    memory.check_access(0x400000);
    FAIL() << "expected an Error";
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::kNoSuchProcess);
    EXPECT_EQ(std::string(error.what()),
              "process " + std::to_string(kImpossiblePid) + " does not exist (or has exited)");
  }
}

TEST(AccessError, OneLineWithCauseAndKind) {
  for (int err : {EPERM, EACCES, ESRCH, EIO}) {
    std::string message = explain_access_error(getppid(), err);
    EXPECT_FALSE(message.empty());
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
  EXPECT_NE(explain_access_error(1, EPERM).find("permission denied reading process 1"),
            std::string::npos);
  EXPECT_EQ(access_error(1, EPERM).kind(), ErrorKind::kPermission);
  EXPECT_EQ(access_error(1, EACCES).kind(), ErrorKind::kPermission);
  EXPECT_EQ(access_error(1, ESRCH).kind(), ErrorKind::kNoSuchProcess);
  EXPECT_EQ(access_error(1, ENOENT).kind(), ErrorKind::kNoSuchProcess);
  EXPECT_EQ(access_error(1, EIO).kind(), ErrorKind::kIo);
}

TEST(AccessError, NamesTheCauseAndTheFix) {
  AccessFacts other_user;
  other_user.my_euid = 1000;
  other_user.target_uid = 0;
  other_user.ptrace_scope = 1;
  std::string message = explain_permission_denied(42, other_user);
  EXPECT_NE(message.find("belongs to user root (uid 0)"), std::string::npos) << message;
  EXPECT_NE(message.find("run as that user or with sudo"), std::string::npos) << message;

  AccessFacts container;
  container.my_euid = 0;
  container.target_uid = 0;
  container.in_container = true;
  message = explain_permission_denied(42, container);
  EXPECT_NE(message.find("--cap-add SYS_PTRACE"), std::string::npos) << message;
  container.have_cap_sys_ptrace = true;  // then the container is not the cause
  EXPECT_EQ(explain_permission_denied(42, container).find("SYS_PTRACE"), std::string::npos);

  AccessFacts same_user;
  same_user.my_euid = 1000;
  same_user.target_uid = 1000;
  for (int scope : {1, 2}) {
    same_user.ptrace_scope = scope;
    message = explain_permission_denied(42, same_user);
    EXPECT_NE(message.find("kernel.yama.ptrace_scope is " + std::to_string(scope)),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("sudo sysctl kernel.yama.ptrace_scope=0"), std::string::npos);
  }
  same_user.ptrace_scope = 3;
  message = explain_permission_denied(42, same_user);
  EXPECT_NE(message.find("ptrace_scope is 3"), std::string::npos) << message;
  EXPECT_NE(message.find("reboot"), std::string::npos) << message;

  same_user.ptrace_scope = 0;
  message = explain_permission_denied(42, same_user);
  EXPECT_NE(message.find("permission denied reading process 42"), std::string::npos);
  EXPECT_NE(message.find("sudo"), std::string::npos) << message;

  AccessFacts self = gather_access_facts(getpid());
  EXPECT_EQ(self.my_euid, geteuid());
  ASSERT_TRUE(self.target_uid.has_value());
  EXPECT_EQ(*self.target_uid, geteuid());
}

// The real refusal: a child that dropped to user nobody may not read its root parent.
TEST(LiveMemory, CheckAccessExplainsPermissionDenied) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to drop to another user";
  static uint64_t value = 5;
  pid_t parent = getpid();
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(10);
    LiveMemory memory(parent);
    try {
      memory.check_access(addr_of(&value));
      _exit(11);
    } catch (const Error& error) {
      if (error.kind() != ErrorKind::kPermission) _exit(12);
      if (std::string(error.what()).find("belongs to user root") == std::string::npos) _exit(13);
      if (std::string(error.what()).find("run as that user or with sudo") == std::string::npos) {
        _exit(14);
      }
    }
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "failed step " << WEXITSTATUS(status);
}

// In a child whose seccomp filter refuses process_vm_readv with EPERM (as some container
// profiles do), reads go through /proc/PID/mem instead.
TEST(LiveMemory, FallsBackToProcMemWhenProcessVmReadvIsRefused) {
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_process_vm_readv, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog program = {sizeof(filter) / sizeof(filter[0]), filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) _exit(10);
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) _exit(11);

    uint64_t source[3] = {7, 8, 9};
    uint64_t copy[3] = {};
    // /proc/PID/mem reads PROT_NONE pages (it reads as a debugger does), so the failing reads
    // here use a page below mmap_min_addr, never mapped.
    const RemoteAddr unmapped = 0x1000;
    LiveMemory memory(getpid());
    if (!memory.read(addr_of(source), copy, sizeof(source))) _exit(12);
    if (!memory.uses_proc_mem() || copy[2] != 9) _exit(13);
    std::vector<ReadRequest> requests = {{addr_of(&source[0]), &copy[0], 8},
                                         {unmapped, &copy[1], 8},
                                         {addr_of(&source[2]), &copy[2], 8}};
    if (memory.read_batch(requests) != 1) _exit(14);
    if (memory.read(unmapped, copy, 8)) _exit(15);
    if (memory.last_error() != EIO) _exit(16);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "failed step " << WEXITSTATUS(status);
}

TEST(SnapshotMemory, ReadsOnlyInsideRegions) {
  SnapshotMemory snapshot;
  snapshot.add_region(0x1000, std::vector<uint8_t>(16, 0xaa));
  snapshot.add_region(0x2000, {1, 2, 3, 4});
  uint8_t out[32] = {};
  EXPECT_TRUE(snapshot.read(0x1000, out, 16));
  EXPECT_EQ(out[15], 0xaa);
  EXPECT_TRUE(snapshot.read(0x2001, out, 3));
  EXPECT_EQ(out[0], 2);
  EXPECT_EQ(out[2], 4);
  EXPECT_FALSE(snapshot.read(0x0fff, out, 2));
  EXPECT_FALSE(snapshot.read(0x100f, out, 2));
  EXPECT_FALSE(snapshot.read(0x1010, out, 1));
  EXPECT_FALSE(snapshot.read(0x2003, out, 2));
  EXPECT_FALSE(snapshot.read(0, out, 1));
  EXPECT_FALSE(snapshot.read(~0ull, out, 2));
  EXPECT_TRUE(snapshot.read(0x9999, out, 0));
  EXPECT_EQ(snapshot.calls(), 9u);

  std::vector<ReadRequest> requests = {{0x1000, out, 4}, {0x1004, out + 4, 4}, {0x5000, out, 1}};
  EXPECT_EQ(snapshot.read_batch(requests), 2u);
}

TEST(SnapshotMemory, MergesOverlappingAndAdjacentRegions) {
  SnapshotMemory snapshot;
  snapshot.add_region(0x1000, std::vector<uint8_t>(8, 1));
  snapshot.add_region(0x1008, std::vector<uint8_t>(8, 2));  // adjacent: extends
  snapshot.add_region(0x1004, std::vector<uint8_t>(2, 3));  // inside: overwrites
  snapshot.add_region(0x1020, std::vector<uint8_t>(8, 4));  // separate
  ASSERT_EQ(snapshot.regions().size(), 2u);
  snapshot.add_region(0x0ffc, std::vector<uint8_t>(0x30, 5));  // covers both: one region
  snapshot.add_region(0x1002, std::vector<uint8_t>(1, 6));
  ASSERT_EQ(snapshot.regions().size(), 1u);
  EXPECT_EQ(snapshot.regions().begin()->first, 0x0ffcu);
  EXPECT_EQ(snapshot.regions().begin()->second.size(), 0x30u);
  uint8_t out[0x30];
  ASSERT_TRUE(snapshot.read(0x0ffc, out, sizeof(out)));
  EXPECT_EQ(out[0], 5);
  EXPECT_EQ(out[6], 6);
  EXPECT_EQ(out[0x2f], 5);

  // Overlapping the end of one region and the start of the next.
  SnapshotMemory gaps;
  gaps.add_region(0x100, std::vector<uint8_t>(0x10, 1));
  gaps.add_region(0x120, std::vector<uint8_t>(0x10, 2));
  gaps.add_region(0x10c, std::vector<uint8_t>(0x18, 3));
  ASSERT_EQ(gaps.regions().size(), 1u);
  EXPECT_EQ(gaps.regions().begin()->second.size(), 0x30u);
  EXPECT_EQ(gaps.regions().begin()->second[0x0b], 1);
  EXPECT_EQ(gaps.regions().begin()->second[0x0c], 3);
  EXPECT_EQ(gaps.regions().begin()->second[0x24], 2);

  gaps.add_region(~0ull - 2, std::vector<uint8_t>(8, 1));  // would wrap: ignored
  gaps.add_region(0x500, {});
  EXPECT_EQ(gaps.regions().size(), 1u);
}

TEST(RecordingMemory, ReplaysWhatWasRead) {
  std::vector<uint64_t> data = {1, 2, 3, 4, 5, 6, 7, 8};
  LiveMemory live(getpid());
  RecordingMemory recording(live);
  uint64_t value = 0;
  ASSERT_TRUE(recording.read_value(addr_of(&data[1]), value));
  uint64_t pair[2];
  std::vector<ReadRequest> requests = {{addr_of(&data[5]), pair, 16}, {0, &value, 8}};
  EXPECT_EQ(recording.read_batch(requests), 1u);
  EXPECT_EQ(recording.calls(), live.calls());
  EXPECT_EQ(recording.calls(), 2u);

  SnapshotMemory& replay = recording.snapshot();
  EXPECT_EQ(replay.regions().size(), 2u);
  ASSERT_TRUE(replay.read_value(addr_of(&data[1]), value));
  EXPECT_EQ(value, 2u);
  ASSERT_TRUE(replay.read(addr_of(&data[5]), pair, 16));
  EXPECT_EQ(pair[1], 7u);
  EXPECT_FALSE(replay.read_value(addr_of(&data[0]), value));
}

class SnapshotFile : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() /
             ("spyglass_snapshot_test_" + std::to_string(getpid()) + ".bin"))
                .string();
  }
  void TearDown() override { std::filesystem::remove(path_); }
  void write_bytes(const std::string& bytes) {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  std::string read_bytes() {
    std::ifstream in(path_, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  void expect_load_fails(const std::string& why) {
    try {
      load_snapshot(path_);
      ADD_FAILURE() << "expected an Error: " << why;
    } catch (const Error& error) {
      EXPECT_EQ(error.kind(), ErrorKind::kIo) << why;
      EXPECT_NE(std::string(error.what()).find(path_), std::string::npos) << error.what();
    }
  }
  std::string path_;
};

TEST_F(SnapshotFile, RoundTrip) {
  SnapshotMemory snapshot;
  snapshot.add_region(0x7f0000001000, {1, 2, 3, 4, 5});
  snapshot.add_region(0x1000, std::vector<uint8_t>(4096, 0x5a));
  save_snapshot(snapshot, path_, R"({"python": "3.12.1"})");

  LoadedSnapshot loaded = load_snapshot(path_);
  EXPECT_EQ(loaded.metadata, R"({"python": "3.12.1"})");
  EXPECT_EQ(loaded.memory.regions(), snapshot.regions());
  uint8_t out[5];
  ASSERT_TRUE(loaded.memory.read(0x7f0000001001, out, 4));
  EXPECT_EQ(out[3], 5);

  SnapshotMemory empty;
  save_snapshot(empty, path_, "");
  LoadedSnapshot loaded_empty = load_snapshot(path_);
  EXPECT_TRUE(loaded_empty.memory.regions().empty());
  EXPECT_EQ(loaded_empty.metadata, "");
}

TEST_F(SnapshotFile, TruncatedOrCorruptFilesFailCleanly) {
  SnapshotMemory snapshot;
  snapshot.add_region(0x1000, {1, 2, 3, 4, 5, 6, 7, 8});
  snapshot.add_region(0x3000, {9, 10});
  save_snapshot(snapshot, path_, "meta");
  const std::string good = read_bytes();

  for (size_t size = 0; size < good.size(); ++size) {
    write_bytes(good.substr(0, size));
    expect_load_fails("truncated to " + std::to_string(size));
  }
  write_bytes(good + "x");
  expect_load_fails("trailing byte");

  std::string bad_magic = good;
  bad_magic[0] = 'X';
  write_bytes(bad_magic);
  expect_load_fails("magic");

  std::string bad_version = good;
  bad_version[8] = 9;
  write_bytes(bad_version);
  expect_load_fails("version");

  // Huge lengths must not allocate or read out of bounds.
  const size_t metadata_length_at = 16;
  const size_t region_count_at = 24 + 4;
  const size_t first_region_size_at = region_count_at + 8 + 8;
  for (size_t at : {metadata_length_at, region_count_at, first_region_size_at}) {
    std::string huge = good;
    for (size_t i = 0; i < 8; ++i) huge[at + i] = '\xff';
    write_bytes(huge);
    expect_load_fails("huge length at " + std::to_string(at));
  }
  // A region whose end wraps around the address space.
  std::string wrapping = good;
  for (size_t i = 0; i < 8; ++i) wrapping[region_count_at + 8 + i] = '\xff';
  write_bytes(wrapping);
  expect_load_fails("wrapping region");

  std::filesystem::remove(path_);
  expect_load_fails("missing file");
  EXPECT_THROW(save_snapshot(snapshot, "/nonexistent-dir/x.bin", ""), Error);
}

}  // namespace
}  // namespace spyglass::process
