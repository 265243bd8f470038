// image_resize: every image of a folder (PNG, JPEG, PGM) resized to a width
// and height, written under the same name to an output folder (Debian's stb:
// libstb). A file that is not an image fails its own task, not the run. A
// file's size and modification time are part of its task, so an image that
// changes is resized again.
#include <stb_image.h>
#include <stb_image_resize.h>
#include <stb_image_write.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>

#include "builtin_jobs.hpp"
#include "mpibatch/command_line.hpp"
#include "mpibatch/error.hpp"
#include "same_file.hpp"

namespace mpibatch::jobs {

namespace {

namespace fs = std::filesystem;

std::string lower_extension(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return e;
}

bool image_name(const fs::path& p) {
  const std::string e = lower_extension(p);
  return e == ".png" || e == ".jpg" || e == ".jpeg" || e == ".pgm";
}

// PGM (P5, 8-bit) is not among stb's writers: it is a header and the bytes.
void write_pgm(const std::string& path, int w, int h, const unsigned char* data) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) throw std::runtime_error("cannot write " + path);
  std::fprintf(f, "P5\n%d %d\n255\n", w, h);
  const bool ok = std::fwrite(data, 1, static_cast<std::size_t>(w) * static_cast<std::size_t>(h),
                              f) == static_cast<std::size_t>(w) * static_cast<std::size_t>(h);
  if (std::fclose(f) != 0 || !ok) throw std::runtime_error("cannot write " + path);
}

}  // namespace

CommandJob image_resize_job() {
  CommandJob job{
      {"image_resize",
       1,
       "resizes every image of a folder (PNG, JPEG, PGM): --param input=DIR --param output=DIR "
       "--param width=W --param height=H",
       {{"path", FieldType::string, "", "the input image"},
        {"size", FieldType::int64, "B", "its size, so a changed file is redone"},
        {"mtime_ns", FieldType::int64, "ns", "its modification time, likewise"},
        {"width", FieldType::int64, "px", "output width"},
        {"height", FieldType::int64, "px", "output height"},
        {"output", FieldType::string, "", "output folder"}},
       {{"output_path", FieldType::string, "", "the resized image"},
        {"in_width", FieldType::int64, "px", "input width"},
        {"in_height", FieldType::int64, "px", "input height"},
        {"channels", FieldType::int64, "", "color channels"}}},
      [](const Params& p) {
        const std::string in = p.text("path");
        const int w = static_cast<int>(p.integer("width")),
                  h = static_cast<int>(p.integer("height"));
        int iw = 0, ih = 0, ch = 0;
        std::unique_ptr<unsigned char, void (*)(void*)> img(stbi_load(in.c_str(), &iw, &ih, &ch, 0),
                                                            stbi_image_free);
        if (!img)
          throw std::runtime_error(in + ": not an image we can read (" + stbi_failure_reason() +
                                   ")");
        std::vector<unsigned char> out(static_cast<std::size_t>(w) * static_cast<std::size_t>(h) *
                                       static_cast<std::size_t>(ch));
        if (!stbir_resize_uint8(img.get(), iw, ih, 0, out.data(), w, h, 0, ch)) {
          throw std::runtime_error(in + ": resizing failed");
        }
        const fs::path dest = fs::path(p.text("output")) / fs::path(in).filename();
        const std::string e = lower_extension(dest);
        bool ok = true;
        if (e == ".png")
          ok = stbi_write_png(dest.c_str(), w, h, ch, out.data(), w * ch) != 0;
        else if (e == ".pgm" && ch == 1)
          write_pgm(dest.string(), w, h, out.data());
        else if (e == ".pgm")
          throw std::runtime_error(in + ": a PGM with " + std::to_string(ch) + " channels");
        else
          ok = stbi_write_jpg(dest.c_str(), w, h, ch, out.data(), 90) != 0;
        if (!ok) throw std::runtime_error("cannot write " + dest.string());
        return std::vector<Value>{dest.string(), std::int64_t{iw}, std::int64_t{ih},
                                  std::int64_t{ch}};
      }};
  job.options = {
      {"input", FieldType::string, "", "folder of images"},
      {"output", FieldType::string, "", "folder for the resized images (made if missing)"},
      {"width", FieldType::int64, "px", "output width"},
      {"height", FieldType::int64, "px", "output height"}};
  job.tasks = [](const Params& o) -> RowStream {
    const fs::path in = o.text("input"), out = o.text("output");
    const std::int64_t w = o.integer("width"), h = o.integer("height");
    if (w <= 0 || h <= 0 || w > 65535 || h > 65535) {
      throw UsageError("--param width and height must be 1 to 65535, got " + std::to_string(w) +
                       "x" + std::to_string(h));
    }
    std::error_code ec;
    if (!fs::is_directory(in, ec))
      throw UsageError("--param input=" + in.string() + ": not a folder");
    refuse_same_file("input", in.string(), "output", out.string());
    fs::create_directories(out, ec);
    if (ec)
      throw UsageError("--param output=" + out.string() +
                       ": cannot make the folder: " + ec.message());
    // Sorted, so that task order (and export) does not depend on the file system.
    auto files = std::make_shared<std::vector<fs::path>>();
    for (const auto& e : fs::directory_iterator(in, ec))
      if (e.is_regular_file() && image_name(e.path())) files->push_back(e.path());
    std::sort(files->begin(), files->end());
    auto next = std::make_shared<std::size_t>(0);
    return [files, next, w, h, out](std::vector<Value>& row) {
      if (*next >= files->size()) return false;
      const fs::path& f = (*files)[(*next)++];
      struct stat st {};
      if (::stat(f.c_str(), &st) != 0) throw UsageError(f.string() + ": cannot stat");
      row = {f.string(),
             static_cast<std::int64_t>(st.st_size),
             static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
             w,
             h,
             out.string()};
      return true;
    };
  };
  return job;
}

}  // namespace mpibatch::jobs
