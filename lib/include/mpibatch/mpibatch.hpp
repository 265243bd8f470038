// Everything mpibatch offers, in one include.
#pragma once

#include "mpibatch/environment.hpp"
#include "mpibatch/error.hpp"
#include "mpibatch/job.hpp"
#include "mpibatch/memory.hpp"
#include "mpibatch/run.hpp"
#include "mpibatch/serialization.hpp"
#include "mpibatch/store.hpp"
#include "mpibatch/task_key.hpp"
#include "mpibatch/version.hpp"
