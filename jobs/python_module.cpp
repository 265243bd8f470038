// _mpibatch_python: the command's run verb for the python job, as an
// extension module of Debian's python3 (python_host.hpp execs python3 with it).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "builtin_jobs.hpp"
#include "mpibatch/command_line.hpp"

// main(["/path/to/mpibatch", "run", "python", ...]): the command's exit status.
PYBIND11_MODULE(_mpibatch_python, m) {
  m.def("main", [](std::vector<std::string> words) {
    // All of them: run's options include every job's (exec's --task-timeout).
    mpibatch::jobs::register_builtin_jobs();
    std::vector<char*> argv;
    for (auto& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
    // The job takes the GIL where it calls Python, from any thread.
    pybind11::gil_scoped_release release;
    return mpibatch::run_hosted_command_line(static_cast<int>(words.size()), argv.data(),
                                             words.at(0));
  });
}
