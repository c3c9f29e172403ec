// Moved to common/error.h (issue 13): kept only so that branches written before the move still
// build once merged; new code includes common/error.h. Remove when no file includes this one.
#pragma once

#include "common/error.h"
