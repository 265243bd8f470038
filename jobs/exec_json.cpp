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

// Python's json.dumps writes NaN, Infinity and -Infinity, which JSON has
// not: outside strings, they become null (read as NaN) and the strings
// "Infinity" and "-Infinity", which a float field reads as such.
std::string python_floats(const std::string& line) {
  std::string out;
  bool in_string = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < line.size())
        out += line[++i];
      else if (c == '"')
        in_string = false;
      continue;
    }
    const std::string_view rest = std::string_view(line).substr(i);
    if (c == '"') {
      in_string = true;
      out += c;
    } else if (rest.starts_with("NaN")) {
      out += "null";
      i += 2;
    } else if (rest.starts_with("-Infinity")) {
      out += "\"-Infinity\"";
      i += 8;
    } else if (rest.starts_with("Infinity")) {
      out += "\"Infinity\"";
      i += 7;
    } else {
      out += c;
    }
  }
  return out;
}

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

std::vector<Value> json_result_values(const std::vector<Field>& fields, const std::string& line) {
  nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) j = nlohmann::json::parse(python_floats(line), nullptr, false);
  if (!j.is_object()) {
    throw std::runtime_error("--json-result: the last line of stdout is not a JSON object: " +
                             line.substr(0, 200));
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
        if (it->is_string() && (*it == "Infinity" || *it == "-Infinity")) {
          values.emplace_back(*it == "Infinity" ? HUGE_VAL : -HUGE_VAL);
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
