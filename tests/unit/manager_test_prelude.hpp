// What every manager unit test file (test_manager_*.cpp) starts with: the
// harness, the headers and the names they use.
// Designated initializers in these tests name only the fields that matter and
// mean the defaults for the rest, which GCC's -Wextra reports for members
// without a default member initializer (std::string ones); that warning is
// noise here. Include this header first.
#pragma once
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#include "core/event_loop.hpp"
#include "core/log.hpp"
#include "core/manager.hpp"
#include "document_util.hpp"
#include "manager_harness.hpp"
#include "model/error.hpp"
#include "model/ipv4.hpp"
#include "plan/kernel_view.hpp"
#include "plan/planner.hpp"
#include "plan/ruleset.hpp"
#include "store/files.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using kvmnet::Error;
using kvmnet::ErrorKind;
using kvmnet::core::Manager;
using kvmnet::core::State;
using kvmnet::plan::AddressInfo;
using kvmnet::plan::LinkInfo;
using kvmnet::plan::RouteInfo;
namespace core = kvmnet::core;
namespace model = kvmnet::model;
namespace plan = kvmnet::plan;
namespace fs = std::filesystem;
using namespace kvmnet::test;
