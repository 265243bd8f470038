// exec's --json-result: a command's last line of output, a JSON object,
// as result columns (a Python script's json.dumps of its results).
#pragma once

#include <string>
#include <vector>

#include "mpibatch/store.hpp"

namespace mpibatch::jobs {

// The fields of "NAME[:TYPE],..." (TYPE float, int, bool or str; float
// when left out). Throws UsageError naming the entry: a bad name or type, a
// name given twice or one of taken (the job's own results).
std::vector<Field> json_result_fields(const std::string& spec, const std::vector<Field>& taken);

// "name:type,..." for fields: the spec as the key sees it.
std::string json_result_spec(const std::vector<Field>& fields);

// fields' values from line, a JSON object (Python's NaN, Infinity and
// -Infinity read as such). Throws std::runtime_error naming what is missing
// or of another type.
std::vector<Value> json_result_values(const std::vector<Field>& fields, const std::string& line);

}  // namespace mpibatch::jobs
