// python: each task calls a Python function with its params as keyword
// arguments, in an interpreter every rank starts once (CPython embedded
// with pybind11): no process per task. The function's annotations type its
// params and results; its module's source is part of every task's key.
#include <pybind11/embed.h>
#include <xxhash.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "exec_json.hpp"
#include "mpibatch/command_line.hpp"
#include "mpibatch/error.hpp"

namespace py = pybind11;

namespace mpibatch::jobs {

namespace {

// Started once, on the thread that first needs it (bind and plan_rows run on
// the main thread), which then releases the GIL: every use takes it, so a
// run of one rank may compute on its second thread. Finalized at exit, which
// flushes what the functions printed. In python3 (python_host.hpp) it is
// running already, the GIL released by the module.
void start_python() {
  static const bool started = [] {
    if (Py_IsInitialized() == 0) {
      // Python's own SIGINT handler would hide the stop signals mpibatch counts.
      py::initialize_interpreter(/*init_signal_handlers=*/false);
      static PyThreadState* main_thread = PyEval_SaveThread();
      std::atexit([] {
        PyEval_RestoreThread(main_thread);
        Py_FinalizeEx();
      });
    }
    py::gil_scoped_acquire gil;
    py::module_::import("sys").attr("path").attr("insert")(
        0, std::filesystem::current_path().string());
    return true;
  }();
  (void)started;
}

// The last lines of the Python exception being handled, on one line (a
// traceback's last line names the exception), as exec's messages do.
std::string describe(py::error_already_set& e) {
  std::string text;
  try {
    const py::list lines =
        py::module_::import("traceback").attr("format_exception")(e.type(), e.value(), e.trace());
    for (const auto& line : lines) text += line.cast<std::string>();
  } catch (const std::exception&) {
    text = e.what();
  }
  constexpr std::size_t kLines = 3;
  std::vector<std::string> kept;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.find_first_not_of(' ') == std::string::npos) continue;
    kept.push_back(line.substr(line.find_first_not_of(' ')));
    if (kept.size() > kLines) kept.erase(kept.begin());
  }
  std::string out;
  for (const auto& l : kept) out += (out.empty() ? "" : " | ") + l;
  if (out.size() > 1024) out = "..." + out.substr(out.size() - 1021);
  return out;
}

std::optional<FieldType> field_type(const py::handle& annotation) {
  const auto builtins = py::module_::import("builtins");
  if (annotation.is(builtins.attr("bool"))) return FieldType::boolean;
  if (annotation.is(builtins.attr("int"))) return FieldType::int64;
  if (annotation.is(builtins.attr("float"))) return FieldType::float64;
  if (annotation.is(builtins.attr("str"))) return FieldType::string;
  return std::nullopt;
}

// The param that puts the function's code in every task's key.
constexpr const char* kCodeHash = "code_hash";

// A function named by --function MODULE:NAME, its params and results typed
// from its annotations (or --result). Made with the GIL held; the objects
// are let go with it held too.
struct Function {
  std::string spec;            // MODULE:NAME
  std::string store_name;      // MODULE.NAME: its job's name in the store
  std::int64_t code = 0;       // XXH3 of the module's source file and NAME
  std::vector<Field> params;   // in the signature's order
  std::vector<Field> results;  // "value", or the keys of the dict it returns
  struct Objects {
    py::object fn, real, integral;
    py::tuple names;  // the params' names: a call's keyword names
  };
  std::unique_ptr<Objects> objects;

  ~Function() {
    if (objects && Py_IsInitialized() != 0) {
      py::gil_scoped_acquire gil;
      objects.reset();
    }
  }
};

[[noreturn]] void refuse(const std::string& spec, const std::string& why) {
  throw UsageError("--function " + spec + ": " + why);
}

std::shared_ptr<Function> load(const Params& o) {
  const std::string spec = o.text("function");
  if (spec.empty()) throw UsageError("python needs --function MODULE:FUNCTION");
  const auto colon = spec.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == spec.size())
    refuse(spec, "give it as MODULE:FUNCTION (e.g. mymodule:simulate)");
  const std::string module_name = spec.substr(0, colon), name = spec.substr(colon + 1);
  start_python();
  py::gil_scoped_acquire gil;
  auto f = std::make_shared<Function>();
  f->spec = spec;
  f->store_name = module_name + "." + name;
  f->objects = std::make_unique<Function::Objects>();
  py::module_ module;
  try {
    module = py::module_::import(module_name.c_str());
    py::object fn = module;
    std::istringstream path(name);
    for (std::string part; std::getline(path, part, '.');) fn = fn.attr(part.c_str());
    f->objects->fn = fn;
  } catch (py::error_already_set& e) {
    refuse(spec, describe(e));
  }
  const py::object fn = f->objects->fn;
  if (PyCallable_Check(fn.ptr()) == 0) refuse(spec, "not a function");
  const auto inspect = py::module_::import("inspect");
  py::dict hints;
  py::object signature;
  try {
    hints = py::module_::import("typing").attr("get_type_hints")(fn);
    signature = inspect.attr("signature")(fn);
  } catch (py::error_already_set& e) {
    refuse(spec, describe(e));
  }
  const auto parameter = inspect.attr("Parameter");
  for (const auto& item : signature.attr("parameters").attr("values")()) {
    const auto pname = item.attr("name").cast<std::string>();
    const py::object kind = item.attr("kind");
    if (!kind.is(parameter.attr("POSITIONAL_OR_KEYWORD")) &&
        !kind.is(parameter.attr("KEYWORD_ONLY")))
      refuse(spec, "parameter '" + pname +
                       "' is not a named one (*args, **kwargs or positional "
                       "only): each task passes its params by name");
    const auto type = hints.contains(pname) ? field_type(hints[pname.c_str()]) : std::nullopt;
    if (!type)
      refuse(spec, "parameter '" + pname + "' needs an annotation: int, float, bool or str");
    f->params.push_back(Field{pname, *type, "", "a parameter of " + spec});
  }
  if (f->params.empty()) refuse(spec, "takes no parameters: every task would be the same");
  for (const Field& p : f->params)
    if (p.name == kCodeHash)
      refuse(spec, "its parameter '" + p.name +
                       "' is named like the column of its code's hash: "
                       "rename it");
  f->objects->names = py::tuple(f->params.size());
  for (std::size_t i = 0; i < f->params.size(); ++i)
    f->objects->names[i] = py::str(f->params[i].name);

  if (const std::string result = o.text("result"); !result.empty()) {
    f->results = json_result_fields(result, {});
  } else if (hints.contains("return")) {
    const py::object ret = hints["return"];
    if (const auto type = field_type(ret)) {
      f->results.push_back(Field{"value", *type, "", "what " + spec + " returned"});
    } else if (py::hasattr(ret, "__total__") && py::hasattr(ret, "__annotations__")) {
      // A TypedDict: its keys and their types.
      const py::dict keys = py::module_::import("typing").attr("get_type_hints")(ret);
      for (const auto& [key, annotation] : keys) {
        const auto kname = key.cast<std::string>();
        const auto key_type = field_type(annotation);
        if (!key_type)
          refuse(spec, "its result's key '" + kname + "' is not int, float, bool or str");
        f->results.push_back(Field{kname, *key_type, "", "a result of " + spec});
      }
    }
  }
  if (f->results.empty())
    refuse(spec,
           "say what it returns: annotate it (-> float, int, bool, str, or a TypedDict of "
           "those), or name the keys of the dict it returns with --result "
           "NAME[:TYPE],... (TYPE float, int, bool or str; float when left out)");

  // The key's code: the module's source file and the function's name.
  std::string source;
  if (py::hasattr(module, "__file__") && !module.attr("__file__").is_none()) {
    const auto file = module.attr("__file__").cast<std::string>();
    std::ifstream in(file, std::ios::binary);
    if (!in) refuse(spec, "cannot read its module's source " + file);
    source.assign(std::istreambuf_iterator<char>(in), {});
  }
  source += '\0' + name;
  f->code = static_cast<std::int64_t>(XXH3_64bits(source.data(), source.size()));

  const auto numbers = py::module_::import("numbers");
  f->objects->real = numbers.attr("Real");
  f->objects->integral = numbers.attr("Integral");
  return f;
}

py::object to_python(const Value& v) {
  return std::visit(
      [](const auto& x) -> py::object {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::int64_t>) return py::int_(x);
        if constexpr (std::is_same_v<T, double>)
          return py::reinterpret_steal<py::object>(PyFloat_FromDouble(x));
        if constexpr (std::is_same_v<T, bool>) return py::bool_(x);
        if constexpr (std::is_same_v<T, std::string>) return py::str(x);
      },
      v);
}

std::string type_name(const py::handle& obj) {
  return py::str(py::type::handle_of(obj).attr("__qualname__")).cast<std::string>();
}

// obj as field's type, or why not. numpy's scalars count as numbers and bools.
Value from_python(const Function& f, const py::handle& obj, const Field& field) {
  auto fail = [&](const std::string& what) -> Value {
    throw std::runtime_error(f.spec + " returned " + what + " for result '" + field.name + "' (" +
                             std::string(to_string(field.type)) + ")");
  };
  // The usual types first: the rest costs a look-up of the type's name.
  if (field.type == FieldType::float64 && PyFloat_CheckExact(obj.ptr()) != 0)
    return PyFloat_AS_DOUBLE(obj.ptr());
  if (field.type == FieldType::string && PyUnicode_Check(obj.ptr()) != 0)
    return obj.cast<std::string>();
  const bool is_bool = PyBool_Check(obj.ptr()) != 0 || type_name(obj) == "bool_";
  switch (field.type) {
    case FieldType::float64:
      if (!is_bool && py::isinstance(obj, f.objects->real)) return obj.cast<double>();
      break;
    case FieldType::int64:
      if (!is_bool && py::isinstance(obj, f.objects->integral)) {
        try {
          return py::int_(py::reinterpret_borrow<py::object>(obj)).cast<std::int64_t>();
        } catch (const py::cast_error&) {
          return fail("an int beyond 64 bits");
        }
      }
      break;
    case FieldType::boolean:
      if (is_bool) return PyObject_IsTrue(obj.ptr()) != 0;
      break;
    case FieldType::string:
      break;
  }
  return fail("a " + type_name(obj));
}

// What a column holds for a task that returned None.
Value stand_in(FieldType type) {
  switch (type) {
    case FieldType::int64:
      return std::int64_t{0};
    case FieldType::float64:
      return std::nan("");
    case FieldType::boolean:
      return false;
    case FieldType::string:
      break;
  }
  return std::string();
}

std::vector<Value> results_of(const Function& f, const py::object& r) {
  std::vector<Value> out;
  out.reserve(f.results.size());
  if (r.is_none()) {  // no result: the columns' stand-ins
    for (const Field& field : f.results) out.push_back(stand_in(field.type));
    return out;
  }
  if (PyDict_Check(r.ptr()) == 0) {
    if (f.results.size() != 1) {
      throw std::runtime_error(f.spec + " returned a " + type_name(r) +
                               ", not a dict of its results (" + std::to_string(f.results.size()) +
                               " keys)");
    }
    out.push_back(from_python(f, r, f.results[0]));
    return out;
  }
  const auto dict = py::reinterpret_borrow<py::dict>(r);
  for (const Field& field : f.results) {
    PyObject* item = PyDict_GetItemString(dict.ptr(), field.name.c_str());
    if (item == nullptr)
      throw std::runtime_error(f.spec + " returned a dict without '" + field.name + "'");
    out.push_back(from_python(f, item, field));
  }
  if (dict.size() != f.results.size()) {
    for (const auto& [key, value] : dict) {
      const std::string k = py::str(key).cast<std::string>();
      if (std::none_of(f.results.begin(), f.results.end(),
                       [&](const Field& x) { return x.name == k; }))
        throw std::runtime_error(f.spec + " returned a dict with '" + k +
                                 "', which is not one of its result columns");
    }
  }
  return out;
}

TaskFn python_fn(std::shared_ptr<const Function> f) {
  return [f](const Params& p) {
    const std::vector<Value>& values = p.values();
    const std::size_t first = values.size() - f->params.size();  // after code_hash
    py::gil_scoped_acquire gil;
    // By keyword, with no dict: vectorcall takes the values and a tuple of their names.
    std::vector<py::object> args;
    args.reserve(f->params.size());
    for (std::size_t i = 0; i < f->params.size(); ++i) args.push_back(to_python(values[first + i]));
    static_assert(sizeof(py::object) == sizeof(PyObject*));
    auto result = py::reinterpret_steal<py::object>(
        PyObject_Vectorcall(f->objects->fn.ptr(), reinterpret_cast<PyObject* const*>(args.data()),
                            0, f->objects->names.ptr()));
    try {
      if (!result) throw py::error_already_set();
      return results_of(*f, result);
    } catch (py::error_already_set& e) {
      throw std::runtime_error(describe(e));
    }
  };
}

RowPlan plan_python_rows(const Params& o) {
  const std::shared_ptr<const Function> f = load(o);
  const std::int64_t version = o.integer("job_version");
  if (version < 0) throw UsageError("--job-version must be >= 1");
  // The rows are the spec's, code_hash given as --param would: a grid run
  // records its spec, not a key per task, and no row is rebuilt.
  RowPlan plan;
  plan.inputs.push_back(Field{kCodeHash, FieldType::int64, "",
                              "XXH3 of the source file of the function's module, and its name"});
  plan.inputs.insert(plan.inputs.end(), f->params.begin(), f->params.end());
  plan.inputs_name = "python " + f->spec;
  plan.keyed = plan.inputs;
  plan.params.push_back(std::string(kCodeHash) + "=" + std::to_string(f->code));
  plan.results = f->results;
  plan.name = f->store_name;
  plan.version = version;
  return plan;
}

}  // namespace

CommandJob python_job() {
  CommandJob job{
      {"python",
       1,
       "calls a Python function per task with the task's params as keyword arguments (--function "
       "MODULE:FUNCTION); stored as job MODULE.FUNCTION",
       {},
       {}},
      [](const Params&) -> std::vector<Value> {
        throw UsageError("python runs a --function: use mpibatch run python");
      }};
  job.run_options = {
      {"function", FieldType::string, "",
       "MODULE:FUNCTION: the function each task calls, imported once per rank from the working "
       "directory or PYTHONPATH; its parameters' annotations (int, float, bool, str) type the "
       "task params"},
      {"result", FieldType::string, "",
       "NAME[:TYPE],...: the keys of the dict the function returns, as result columns (TYPE "
       "float, int, bool or str; default float); by default its return annotation says"},
      {"job_version", FieldType::int64, "",
       "N: the job's version in the store (default 1); a new one computes every task again"}};
  job.plan_rows = plan_python_rows;
  job.bind = [](const Params& o) { return python_fn(load(o)); };
  return job;
}

}  // namespace mpibatch::jobs
