// The bytes of a command-line task's input: its row of parameter values.
// These bytes are what task keys hash, so their layout is fixed: it is the
// layout Boost's binary archive (no header) gave the first releases' `Row`
// (a 5-byte class preamble of zeros, a u64 count, then per value a type byte
// and the value: int64 and float64 as 8 bytes, bool as 1, a string as a u64
// length and its bytes; native byte order). Written by hand so the
// command's per-task path builds no archive, locale or stream.
#pragma once

#include <string_view>
#include <vector>

#include "mpibatch/serialization.hpp"
#include "mpibatch/store.hpp"

namespace mpibatch::detail {

// Replaces out with the row's bytes; reuses out's capacity.
void encode_row(const std::vector<Value>& row, Bytes& out);

// Replaces row with the values in bytes, reusing its strings' capacity.
// Throws Error when bytes are truncated, too long, or not a row.
void decode_row(std::string_view bytes, std::vector<Value>& row);

// Replaces out with the bytes of the row's first n values (a key's input
// when the rest are descriptive params). Throws as decode_row.
void encode_row_prefix(std::string_view bytes, std::size_t n, Bytes& out);

}  // namespace mpibatch::detail
