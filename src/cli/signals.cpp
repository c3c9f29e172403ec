#include "cli/signals.h"

#include <signal.h>

#include <atomic>

namespace spyglass::cli {
namespace {

std::atomic<int> g_signal{0};

void on_signal(int sig) { g_signal.store(sig); }

}  // namespace

void install_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool stop_requested() { return g_signal.load() != 0; }
void clear_stop_request() { g_signal.store(0); }
int stop_signal() { return g_signal.load(); }

}  // namespace spyglass::cli
