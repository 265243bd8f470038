// MPIBATCH_EXPORT marks what libmpibatch exports: the public API. The
// library is compiled with hidden visibility, so nothing else (the detail
// namespace's internals) is part of its ABI.
#pragma once

#if defined(__GNUC__) || defined(__clang__)
#define MPIBATCH_EXPORT __attribute__((visibility("default")))
#define MPIBATCH_HIDDEN __attribute__((visibility("hidden")))
#else
#define MPIBATCH_EXPORT
#define MPIBATCH_HIDDEN
#endif
