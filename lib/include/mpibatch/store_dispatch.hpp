// What a custom dispatcher needs of a store beyond what users call (the
// engine's master rank is one): records appended as columns, claims that
// let one index access serve both the cache check and the append, and the
// hooks that keep a writer's memory bounded. Writers only; a Store is not
// thread-safe, and neither are these.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "mpibatch/export.hpp"
#include "mpibatch/store.hpp"

namespace mpibatch {

// One field's values for the rows of a RecordBatch; the alternative must
// match the field's type (in FieldType's order; bools as 0 or 1).
using ValueColumn = std::variant<std::vector<std::int64_t>, std::vector<double>,
                                 std::vector<std::uint8_t>, std::vector<std::string>>;

// Records of one job, column by column: the hot path's form (the engine
// appends every batch of results this way), with no allocation per record.
// Row i is the record {keys[i], status[i], ...}. A failed row stores no
// result and no values (its entries in results and values are ignored).
struct RecordBatch {
  std::string job;
  std::int64_t job_version = 1;
  std::int64_t run = 0;
  std::vector<TaskKey> keys;
  std::vector<Status> status;
  std::vector<std::int32_t> rank;
  std::vector<double> start_time;
  std::vector<double> duration;
  Bytes results;                            // the rows' result archives, one after another
  std::vector<std::uint32_t> result_sizes;  // their sizes
  std::string errors;                       // the rows' error messages, one after another
  std::vector<std::uint32_t> error_sizes;
  // One column per result field; a failed row holds what its task failed
  // with, or NaN, 0, false and "" (stored as no values).
  std::vector<ValueColumn> values;
  std::vector<ValueColumn> params;  // one column per param field of the job
  std::size_t size() const { return keys.size(); }
};

namespace dispatch {

// A writer's note that it will append a key's record (see claim).
using Claim = std::uint32_t;

// Appends a columnar batch: one log frame, stored exactly as the equivalent
// Records. Throws UsageError (nothing appended) when a column's length or
// type does not match the batch or the job.
MPIBATCH_EXPORT void append(Store& store, const RecordBatch& batch);

// lookup() that also claims the keys to be computed, so that
// append(store, batch, claims) stores their records without finding them in
// the index again (a dispatcher's per-task cost: one index access, not two).
// out[i] and claims[i] (spans of keys.size()) say, for keys[i]:
//   ok       stored; not claimed
//   failed   stored as failed; not claimed (claim_failed is false)
//   missing  claimed now, as claims[i]: no record, or a failed one and
//            claim_failed is true
//   claimed  claimed before and not settled: a duplicate of a task in hand
// A claimed key looks as before (missing, or its failed record) to lookup(),
// get() and size() until its record is appended. Claims are in memory only
// and are never logged: close(), compact(), erase_if() and release_claims()
// drop those not settled. Memory: about 40 bytes per unsettled claim.
MPIBATCH_EXPORT void claim(Store& store, std::span<const TaskKey> keys, std::span<Lookup> out,
                           std::span<Claim> claims, bool claim_failed);
// append(store, batch) whose rows were claimed: claims[i] is row i's claim,
// which this settles (its id may be given out again). Throws UsageError, and
// appends nothing, when claims.size() differs from the rows or a claim is
// not outstanding or was made for another key.
MPIBATCH_EXPORT void append(Store& store, const RecordBatch& batch, std::span<const Claim> claims);
// Drops every claim not settled: those keys look as they did before.
MPIBATCH_EXPORT void release_claims(Store& store);

// True when the memtable holds segment_records or more, so that the next
// commit() writes it to a segment. Memory grows until that commit: callers
// that commit on a timer commit early when this says so. False for readers.
MPIBATCH_EXPORT bool commit_due(const Store& store);
// Makes room in the writer's in-memory key index for `keys` keys in all
// (those it will append or claim), so that it does not grow (rehashing every
// key) while they come. Memory only. Costs 1 byte a key at once, the rest as
// keys arrive. Room for more than 2^27 keys is not made up front.
MPIBATCH_EXPORT void reserve(Store& store, std::size_t keys);

}  // namespace dispatch

}  // namespace mpibatch
