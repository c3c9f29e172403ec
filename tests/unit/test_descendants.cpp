// process/descendants.h: a process's family, its command line, and telling an exec apart.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "process/descendants.h"
#include "process/maps.h"

namespace spyglass::process {
namespace {

// A child that waits (a fork of this test), or one that runs `sleep` (an exec).
pid_t start_child(bool exec_sleep) {
  const pid_t child = fork();
  if (child == 0) {
    if (exec_sleep) execlp("sleep", "sleep", "30", static_cast<char*>(nullptr));
    pause();
    _exit(0);
  }
  return child;
}

void stop(pid_t child) {
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
}

TEST(Descendants, FindsChildrenAndTheirPrograms) {
  const pid_t waiting = start_child(false);
  const pid_t sleeping = start_child(true);
  // The exec takes a moment: wait until the child runs the new program.
  for (int i = 0; i < 200 && command_name(sleeping) != "sleep"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const std::vector<pid_t> family = descendants(getpid());
  EXPECT_NE(std::find(family.begin(), family.end(), waiting), family.end());
  EXPECT_NE(std::find(family.begin(), family.end(), sleeping), family.end());
  EXPECT_EQ(command_line(sleeping), "sleep 30");
  EXPECT_EQ(command_arguments(sleeping), (std::vector<std::string>{"sleep", "30"}));
  EXPECT_TRUE(process_alive(sleeping));
  EXPECT_TRUE(seconds_since_start(sleeping).has_value());

  // A fork runs the same program (same auxiliary vector); an exec, another.
  const uint64_t own = exec_identity(getpid());
  ASSERT_NE(own, 0u);
  EXPECT_EQ(exec_identity(waiting), own);
  EXPECT_NE(exec_identity(sleeping), own);

  // Neither this test nor sleep maps a file named python.
  EXPECT_EQ(maps_python(sleeping), std::optional<bool>(false));
  stop(waiting);
  stop(sleeping);
  EXPECT_FALSE(process_alive(sleeping));
  // Gone: nothing to read is not "not Python".
  EXPECT_EQ(maps_python(sleeping), std::nullopt);
  EXPECT_EQ(exec_identity(sleeping), 0u);
}

}  // namespace
}  // namespace spyglass::process
