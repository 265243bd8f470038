// For unit tests that damage a table on purpose to test a check behind the
// checksums (an index that is wrong but consistent, a table of an older
// build): make the checksums match the damage again.
#pragma once

#include <gtest/gtest.h>
#include <hdf5.h>

#include <filesystem>
#include <string>
#include <vector>

#include "hdf5/hdf5.hpp"
#include "mpibatch/store.hpp"
#include "store/block_sums.hpp"
#include "store/manifest.hpp"

namespace mpibatch::damage_support {

// Rewrites the table's /index/block_sums from its datasets as they are now.
inline void resum_index(const std::filesystem::path& table) {
  const hid_t f = H5Fopen(table.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  std::vector<std::string> order{"/index/rows", "/index/buckets"};
  const bool tagged = H5Lexists(f, "/index/tags", H5P_DEFAULT) > 0;
  order.push_back(tagged ? "/index/tags" : "/index/keys");
  order.push_back("/index/replacing");
  if (tagged) {
    const hid_t g = H5Gopen2(f, "/index", H5P_DEFAULT);
    for (const auto& p : detail::h5::read_attr_strings(g, "groups")) order.push_back(p + "/key");
    H5Gclose(g);
  }
  std::vector<std::uint64_t> sums;
  for (const auto& name : order) {
    const hid_t ds = H5Dopen2(f, name.c_str(), H5P_DEFAULT);
    ASSERT_GE(ds, 0) << name;
    const hid_t type = H5Dget_type(ds);
    const hid_t space = H5Dget_space(ds);
    std::vector<char> bytes(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space)) *
                            H5Tget_size(type));
    if (!bytes.empty()) {
      ASSERT_GE(H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()), 0);
    }
    detail::BlockSummer summer;
    summer.add(bytes.data(), bytes.size());
    for (auto s : summer.finish()) sums.push_back(s);
    H5Sclose(space);
    H5Tclose(type);
    H5Dclose(ds);
  }
  const hid_t ds = H5Dopen2(f, "/index/block_sums", H5P_DEFAULT);
  ASSERT_GE(ds, 0);
  ASSERT_GE(H5Dwrite(ds, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, sums.data()), 0);
  H5Dclose(ds);
  ASSERT_GE(H5Fclose(f), 0);
}

// Rewrites the store's MANIFEST with each table's stamp as the file is now.
inline void restamp(const std::filesystem::path& store) {
  const auto file = Store::sidecar(store) / "MANIFEST";
  auto m = detail::read_manifest(file);
  ASSERT_TRUE(m.has_value());
  for (auto& [name, stamp] : m->stamps) stamp = detail::stamp_file(Store::sidecar(store) / name);
  detail::write_manifest(file, *m);
}

}  // namespace mpibatch::damage_support
