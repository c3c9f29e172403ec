// Before 3.12: the two ways of seeing calls that backend_eval_frame.cpp chooses between.
#pragma once

#include "extension/compat.h"

#if !SPYGLASS_HAS_MONITORING

namespace spyglass::exact::backend {

// backend_eval_frame.cpp: a PEP 523 eval-frame function for the interpreter.
namespace eval_frame {
// False, with no Python error, when another eval-frame function is installed already.
bool install();
void uninstall();
}  // namespace eval_frame

// backend_profile.cpp: a C profile hook on every thread.
namespace profile_hook {
bool install();  // false with a Python error set
void uninstall();
}  // namespace profile_hook

}  // namespace spyglass::exact::backend

#endif  // !SPYGLASS_HAS_MONITORING
