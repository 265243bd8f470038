// Text to typed values and back, for the command line: grid specs, --param,
// task files and exports. Errors are UsageErrors whose message says where.
#pragma once

#include <string>
#include <string_view>

#include "mpibatch/store.hpp"

namespace mpibatch::detail {

// Parses text as a value of field's type. where names the place for the
// message, e.g. "tasks.csv row 3, column 'order'".
// word as one word for a POSIX shell: as it is when it holds only
// characters no shell treats specially (unless always), else in single quotes.
std::string shell_word(const std::string& word, bool always = false);
// "1 run", "2 runs": n and noun, plural (many, else noun + "s") unless n is 1.
std::string plural(std::uint64_t n, const std::string& noun, const std::string& many = "");
// text as a message shows it: whole up to 100 bytes, else its start and
// its size (a 10 MB field is not echoed).
std::string shown(std::string_view text);
Value parse_value(const Field& field, std::string_view text, const std::string& where);
std::string format_value(const Value& v);
const char* type_name(FieldType t);

// "90", "90s", "15m", "2h", "1h30m", "1:30:00", "2-00:00:00" (Slurm's forms) to seconds.
double parse_duration(std::string_view text, const std::string& option);

}  // namespace mpibatch::detail
