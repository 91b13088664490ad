// The small harness the kernel checks share: counted checks that print what
// failed, expected-error assertions on kvmnet::Error, guarded steps, and
// running a command (ip, bridge, tc, nft) to compare with its view.
#pragma once

#include "model/error.hpp"

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <functional>
#include <initializer_list>
#include <iostream>
#include <string>

namespace kvmnet::test {

inline int failures = 0;
inline int checks = 0;

inline bool check(bool ok, const std::string& what)
{
    ++checks;
    if (!ok) {
        ++failures;
        std::cout << "FAIL: " << what << '\n';
    }
    return ok;
}

inline std::string kind_text(ErrorKind kind) { return std::string(error_kind_name(kind)); }

// Runs `action` expecting a kvmnet::Error of `kind` whose message contains
// every string in `needles`; returns the message (empty when none came).
inline std::string expect_error(const std::string& what, ErrorKind kind, std::initializer_list<std::string> needles,
                                const std::function<void()>& action)
{
    try {
        action();
        check(false, what + ": expected " + kind_text(kind) + " error, call succeeded");
    } catch (const Error& e) {
        std::cout << "  (" << what << " -> " << kind_text(e.kind()) << ": " << e.what() << ")\n";
        check(e.kind() == kind,
              what + ": expected kind " + kind_text(kind) + ", got " + kind_text(e.kind()) + " (" + e.what() + ")");
        for (const auto& needle : needles)
            check(std::string(e.what()).find(needle) != std::string::npos,
                  what + ": message \"" + e.what() + "\" lacks \"" + needle + "\"");
        return e.what();
    }
    return {};
}

// Returns false (and records a failure) if `action` throws, so later checks can still run.
inline bool step(const std::string& what, const std::function<void()>& action)
{
    try {
        action();
        return true;
    } catch (const std::exception& e) {
        check(false, what + " threw: " + e.what());
        return false;
    }
}

struct Output {
    int status = -1;
    std::string text;
};

// Runs a shell command, returning its exit status and combined output.
inline Output run(const std::string& command)
{
    Output out;
    FILE* pipe = popen((command + " 2>&1").c_str(), "r");
    if (pipe == nullptr) return out;
    std::array<char, 4096> buffer{};
    size_t n = 0;
    while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0)
        out.text.append(buffer.data(), n);
    const int raw = pclose(pipe);
    out.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
    return out;
}

}  // namespace kvmnet::test
