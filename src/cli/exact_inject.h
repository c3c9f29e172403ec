// `spyglass attach PID --exact` on a process that never imported spyglass: the target is asked
// to run a small script of ours at its next safe point (an eval-breaker check: PEP 768 on 3.14+,
// its pending-call queue before, src/cli/safe_point.h), which loads exact mode's extension and
// opens the control socket. docs/exact.md ("Starting exact mode in a running process").
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace spyglass::cli {

struct Injection {
  std::string socket_path;         // where the script opened the control socket
  std::string package_folder;      // the folder of the spyglass package it loaded
  std::vector<std::string> files;  // ours, to remove when the session ends
  double seconds = 0;              // from the request to the socket being ready
  std::string how;                 // how the request reached it ("PEP 768")
  // The program had imported spyglass itself (and may time functions of its own): leaving
  // closes the socket but keeps the program's own timing.
  bool program_imported_spyglass = false;
};

// Makes process `pid` (run by `uid`) open exact mode's control socket at `socket_path`.
// Throws Error with one line when it cannot: not 3.14+, remote debugging turned off, no
// extension built for its interpreter, no permission, the process exited, or no thread ran
// the script within `timeout_seconds` (nothing is then left pending in the target).
Injection inject_exact_mode(int pid, unsigned uid, const std::string& socket_path,
                            double timeout_seconds);

// An injection under way: the request written into every thread of process `pid` (run by
// `uid`), the answer not in yet. A process blocked in C (a worker waiting for work) takes it
// when it next runs Python code; meanwhile nothing waits for it. Its script gives up after
// `deadline_seconds`, or when spyglass has gone. Destroyed unanswered, it withdraws the requests
// no thread has taken. Throws Error as inject_exact_mode does for what is checked up front.
class PendingInjection {
 public:
  PendingInjection(int pid, unsigned uid, const std::string& socket_path, double deadline_seconds);
  ~PendingInjection();
  PendingInjection(const PendingInjection&) = delete;
  PendingInjection& operator=(const PendingInjection&) = delete;
  // The injection once the target has run the script; nullopt while pending. Throws Error when
  // the script answered a failure or the process exited.
  std::optional<Injection> answer();
  // Withdraws the requests no thread has taken yet; returns how many were taken.
  size_t withdraw();
  // Thread states asked, or queue entries left (before withdraw()).
  size_t armed() const;
  // One line: why nothing took the request within `seconds`, and what to do.
  std::string not_taken(double seconds) const;
  int pid() const { return pid_; }

 private:
  struct State;
  int pid_;
  std::unique_ptr<State> state_;
};

// Removes the files an injection left (its script, claim and result); never throws.
void remove_injection_files(const Injection& injection);

// The folder holding the spyglass package to load into process `pid`: `tag` is its interpreter's
// SOABI ("cpython-314-x86_64-linux-gnu"), `minor` its minor version; `prefixes` are the folders
// its environment lives in, as the target sees them (site-packages are looked for under each,
// then the `make python` builds and the per-user cache). Only a package whose extension carries
// exactly `tag` is a candidate. Empty when none is found.
std::string find_extension_folder(int pid, const std::vector<std::string>& prefixes, int minor,
                                  const std::string& tag);

}  // namespace spyglass::cli
