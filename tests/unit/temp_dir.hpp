// A mkdtemp directory under the system's temp directory, removed
// recursively when the object goes: the state and runtime directories of
// unit tests (never the machine's own).
#pragma once

#include <catch2/catch.hpp>

#include <filesystem>
#include <stdlib.h>
#include <string>
#include <system_error>

namespace kvmnet::testing {

class TempDir {
public:
    TempDir()
    {
        std::string pattern = (std::filesystem::temp_directory_path() / "kvmnet-unit-XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        path = pattern;
    }
    ~TempDir()
    {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    std::string path;
};

}  // namespace kvmnet::testing
