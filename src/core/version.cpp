// The version string. Only this file sees the commit hash, so a new commit recompiles one file.
#include "retort/version.h"

namespace retort {

std::string version_string() { return std::string("retort ") + RETORT_VERSION + " (" + RETORT_GIT_COMMIT + ")"; }

}  // namespace retort
