// `spyglass attach PID --exact`: drives exact mode inside the target over its control socket.
#include "cli/commands.h"
#include <fmt/format.h>

#include "process/error.h"

namespace spyglass::cli {

int run_exact_attach(int pid, const ProfileOptions&) {
  throw Error(ErrorKind::kUsage,
              fmt::format("attach --exact {}: exact mode's control socket is not supported by "
                          "this build yet",
                          pid));
}

}  // namespace spyglass::cli
