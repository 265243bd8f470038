#include "exec_json.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <regex>
#include <stdexcept>

#include "mpibatch/error.hpp"

namespace mpibatch::jobs {

namespace {

struct TypeName {
  const char* name;
  FieldType type;
};
constexpr TypeName kTypes[] = {{"float", FieldType::float64},
                               {"int", FieldType::int64},
                               {"bool", FieldType::boolean},
                               {"str", FieldType::string}};

}  // namespace

std::vector<Field> json_result_fields(const std::string& spec, const std::vector<Field>& taken) {
  static const std::regex kName("[A-Za-z0-9_.+-]+");
  std::vector<Field> out;
  std::size_t at = 0;
  while (at <= spec.size()) {
    const auto comma = std::min(spec.find(',', at), spec.size());
    const std::string entry = spec.substr(at, comma - at);
    at = comma + 1;
    const auto colon = entry.find(':');
    const std::string name = entry.substr(0, colon);
    const std::string type = colon == std::string::npos ? "float" : entry.substr(colon + 1);
    const auto bad = [&](const std::string& why) {
      throw UsageError("--json-result '" + spec + "': '" + entry + "': " + why);
    };
    if (!std::regex_match(name, kName)) bad("a name of letters, digits and _ . + -");
    const auto t = std::find_if(std::begin(kTypes), std::end(kTypes),
                                [&](const TypeName& k) { return type == k.name; });
    if (t == std::end(kTypes)) bad("a type of float, int, bool or str");
    const auto same = [&](const Field& f) { return f.name == name; };
    if (std::any_of(out.begin(), out.end(), same)) bad("given twice");
    if (std::any_of(taken.begin(), taken.end(), same)) bad("a result of exec itself");
    out.push_back(Field{name, t->type, "", "from the command's JSON output (--json-result)"});
  }
  return out;
}

std::string json_result_spec(const std::vector<Field>& fields) {
  std::string out;
  for (const Field& f : fields) {
    const auto t = std::find_if(std::begin(kTypes), std::end(kTypes),
                                [&](const TypeName& k) { return f.type == k.type; });
    out += (out.empty() ? "" : ",") + f.name + ":" + t->name;
  }
  return out;
}

std::vector<Value> json_result_values(const std::vector<Field>& fields, const std::string& out) {
  std::string_view rest(out);
  std::string_view line;
  while (!rest.empty() && line.find_first_not_of(" \t\r") == std::string_view::npos) {
    while (!rest.empty() && rest.back() == '\n') rest.remove_suffix(1);
    const auto nl = rest.find_last_of('\n');
    line = nl == std::string_view::npos ? rest : rest.substr(nl + 1);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(0, nl);
  }
  const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    throw std::runtime_error("--json-result: the last line of stdout is not a JSON object: " +
                             std::string(line.substr(0, 200)));
  }
  std::vector<Value> values;
  for (const Field& f : fields) {
    const auto it = j.find(f.name);
    if (it == j.end())
      throw std::runtime_error("--json-result: no '" + f.name + "' in " + j.dump());
    const auto wrong = [&] {
      return std::runtime_error("--json-result: '" + f.name + "' is " + it->dump() + ", not " +
                                to_string(f.type));
    };
    switch (f.type) {
      case FieldType::float64:
        if (it->is_null()) {  // Python's json writes NaN as NaN, which is not JSON; null is
          values.emplace_back(std::nan(""));
          break;
        }
        if (!it->is_number()) throw wrong();
        values.emplace_back(it->get<double>());
        break;
      case FieldType::int64:
        if (!it->is_number_integer()) throw wrong();
        values.emplace_back(it->get<std::int64_t>());
        break;
      case FieldType::boolean:
        if (!it->is_boolean()) throw wrong();
        values.emplace_back(it->get<bool>());
        break;
      case FieldType::string:
        if (!it->is_string()) throw wrong();
        values.emplace_back(it->get<std::string>());
        break;
    }
  }
  return values;
}

}  // namespace mpibatch::jobs
