// spyglass-exact-ctl PID COMMAND [FUNCTION...]: one request to a program's exact-mode control
// socket, through the same client the `spyglass attach PID --exact` command uses; prints the
// reply's table (for results/stop) or its JSON. Exit status 1 when the reply says ok: false.
// Used by the tests; handy by hand.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "extension/protocol_client.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s PID COMMAND [FUNCTION...]\n", argv[0]);
    return 2;
  }
  int pid = std::atoi(argv[1]);
  std::vector<std::string> functions(argv + 3, argv + argc);
  try {
    long uid = spyglass::exact::process_uid(pid);
    if (uid < 0) throw std::runtime_error("no process " + std::string(argv[1]));
    spyglass::exact::ControlClient client(
        spyglass::exact::control_socket_path(pid, static_cast<unsigned>(uid)));
    nlohmann::json reply = client.command(argv[2], functions);
    if (reply.contains("table") && reply["table"].is_string()) {
      std::fputs(reply["table"].get<std::string>().c_str(), stdout);
    }
    std::printf("%s\n", reply.dump().c_str());
    return reply.value("ok", false) ? 0 : 1;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "spyglass-exact-ctl: %s\n", error.what());
    return 3;
  }
}
