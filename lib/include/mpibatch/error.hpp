// Every exception mpibatch throws derives from mpibatch::Error, so a caller
// can catch one type. Each class maps to one documented process exit status.
#pragma once

#include <stdexcept>
#include <string>

#include "mpibatch/export.hpp"

namespace mpibatch {

// Process exit statuses used by the mpibatch command and by Environment.
enum ExitStatus : int {
  kExitOk = 0,          // every task done
  kExitRuntime = 1,     // runtime error (I/O, MPI, HDF5, damaged store)
  kExitUsage = 2,       // bad usage or bad input
  kExitIncomplete = 3,  // stopped early (signal, time limit): resumable
  kExitFailedTasks = 4  // finished, but some tasks failed
};

// Root of the hierarchy. what() is one line meant for the user.
class MPIBATCH_EXPORT Error : public std::runtime_error {
 public:
  // A folder the store reaches through a descriptor is named by its path.
  explicit Error(const std::string& message);
  // The process exit status this error should produce.
  virtual int exit_status() const noexcept { return kExitRuntime; }
};

// Bad usage or bad input (an option, a file row, a parameter value).
class MPIBATCH_EXPORT UsageError : public Error {
 public:
  using Error::Error;
  int exit_status() const noexcept override { return kExitUsage; }
};

// An operating-system call failed; the message names the call and the path.
class MPIBATCH_EXPORT IoError : public Error {
 public:
  using Error::Error;
};

// An MPI routine returned an error; the message names the routine.
class MPIBATCH_EXPORT MpiError : public Error {
 public:
  using Error::Error;
};

// An HDF5 routine failed; the message names the routine and the HDF5 error stack.
class MPIBATCH_EXPORT Hdf5Error : public Error {
 public:
  using Error::Error;
};

// Anything wrong with a store: not a store, damaged, newer format, locked.
class MPIBATCH_EXPORT StoreError : public Error {
 public:
  using Error::Error;
};

// The path exists but is not an mpibatch store.
class MPIBATCH_EXPORT NotAStoreError : public StoreError {
 public:
  using StoreError::StoreError;
  int exit_status() const noexcept override { return kExitUsage; }
};

// The store was written by a newer mpibatch whose format this one cannot read.
class MPIBATCH_EXPORT StoreVersionError : public StoreError {
 public:
  using StoreError::StoreError;
};

// Another process holds the store's write lock; the message names its host and pid.
class MPIBATCH_EXPORT StoreLockedError : public StoreError {
 public:
  using StoreError::StoreError;
};

// Committed data failed a checksum or could not be read.
class MPIBATCH_EXPORT StoreCorruptError : public StoreError {
 public:
  using StoreError::StoreError;
};

}  // namespace mpibatch
