// The HDF5 wrappers that reach under the library: a file's descriptor.
#include "hdf5/hdf5.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "test_support.hpp"

namespace {

using mpibatch::test_support::TempDir;
namespace h5 = mpibatch::detail::h5;

// The descriptor is the file's own: what HDF5 writes through it is the
// file's size on disk (TableWriter starts writeback on it).
TEST(Hdf5, FileDescriptorIsTheFilesOwn) {
  TempDir dir;
  const auto path = dir / "f.h5";
  h5::Handle file = h5::create_file(path.string());
  const int fd = h5::file_descriptor(file.get());
  ASSERT_GE(fd, 0);
  {
    h5::Column c(file.get(), "x", H5T_NATIVE_DOUBLE, 1024);
    const std::vector<double> v(100000, 1.5);
    c.append(H5T_NATIVE_DOUBLE, v.data(), v.size());
  }
  ASSERT_GE(H5Fflush(file.get(), H5F_SCOPE_GLOBAL), 0);
  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_GT(st.st_size, 800000);
  EXPECT_EQ(static_cast<std::uintmax_t>(st.st_size), std::filesystem::file_size(path));
}

// A link planted where a table or view is created (its .tmp) is replaced,
// never written through.
TEST(Hdf5, CreatingAFileNeverWritesThroughALinkAtItsPath) {
  TempDir dir;
  const auto target = dir / "precious.txt";
  { std::ofstream(target) << "mine"; }
  std::filesystem::create_symlink(target, dir / "t.h5.tmp");
  { h5::Handle file = h5::create_file((dir / "t.h5.tmp").string()); }
  EXPECT_FALSE(std::filesystem::is_symlink(dir / "t.h5.tmp"));
  std::string text;
  std::getline(std::ifstream(target), text);
  EXPECT_EQ(text, "mine");
}

// A killed run leaves the view without the job's group: verify asks for "jobs/exec/v2" and
// must hear "no", not an error that calls the store damaged.
TEST(Hdf5, ExistsIsFalseWhenAGroupOnThePathIsMissing) {
  TempDir dir;
  h5::Handle file = h5::create_file((dir / "f.h5").string());
  h5::create_group(file.get(), "jobs");
  EXPECT_FALSE(h5::exists(file.get(), "jobs/exec/v2"));
  EXPECT_FALSE(h5::exists(file.get(), "other/exec"));
  h5::Handle exec = h5::create_group(file.get(), "jobs/exec");
  EXPECT_TRUE(h5::exists(file.get(), "jobs/exec"));
  EXPECT_FALSE(h5::exists(file.get(), "jobs/exec/v2"));
  h5::create_group(exec.get(), "v2");
  EXPECT_TRUE(h5::exists(file.get(), "jobs/exec/v2"));
}

}  // namespace
