#include "extension/toml_json.h"

#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>
#include <toml++/toml.h>

namespace spyglass::exact {
namespace {

constexpr int kMaxDepth = 32;

nlohmann::json to_json(const toml::node& node, int depth) {
  if (depth > kMaxDepth) throw std::runtime_error("TOML nested too deeply");
  if (const toml::table* table = node.as_table()) {
    nlohmann::json object = nlohmann::json::object();
    for (const auto& [key, value] : *table) object[std::string(key.str())] = to_json(value, depth + 1);
    return object;
  }
  if (const toml::array* array = node.as_array()) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& value : *array) list.push_back(to_json(value, depth + 1));
    return list;
  }
  if (node.is_string()) return node.value<std::string>().value_or("");
  if (node.is_integer()) return node.value<int64_t>().value_or(0);
  if (node.is_floating_point()) return node.value<double>().value_or(0);
  if (node.is_boolean()) return node.value<bool>().value_or(false);
  std::ostringstream text;  // dates and times: their TOML text
  node.visit([&](auto&& value) {
    if constexpr (toml::is_date<decltype(value)> || toml::is_time<decltype(value)> ||
                  toml::is_date_time<decltype(value)>) {
      text << value;
    }
  });
  return text.str();
}

}  // namespace

std::string toml_file_to_json(const std::string& path) {
  try {
    toml::table table = toml::parse_file(path);
    return to_json(table, 0).dump();
  } catch (const toml::parse_error& error) {
    std::ostringstream message;
    message << path << ": " << error.description() << " (line " << error.source().begin.line
            << ")";
    throw std::runtime_error(message.str());
  }
}

}  // namespace spyglass::exact
