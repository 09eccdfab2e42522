// Retort's version and the git commit it was built from ("retort 0.1.0 (abc1234)").
#pragma once

#include <string>

namespace retort {

std::string version_string();

}  // namespace retort
