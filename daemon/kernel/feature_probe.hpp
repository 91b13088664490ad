// A kernel feature asked about once: the kernel's answer that it lacks the
// feature is kept until the daemon restarts, a failure of the moment is not.
#pragma once

#include <functional>
#include <optional>
#include <string>

namespace kvmnet::kernel {

class FeatureProbe {
public:
    // What a probe's request got: error 0 when the kernel took it, else its
    // positive errno and the part of the request that failed.
    struct Result {
        int error = 0;
        std::string what;
    };

    // `feature` names it and where it comes from (modules, kernel options),
    // for the messages.
    explicit FeatureProbe(std::string feature) : feature_(std::move(feature)) {}

    // "" when the kernel has the feature, else why not. ENOENT (no such
    // flowtable or expression type, and no module to load for it) and
    // EOPNOTSUPP are the kernel's word and are kept; any other errno
    // (ENOMEM, ENOBUFS, EPERM in a confined test, ...) throws
    // kvmnet::Error (Kernel) and the next call probes again: cached, one
    // such failure would refuse every fast-path network until a restart.
    std::string missing(const std::function<Result()>& probe);

private:
    std::string feature_;
    std::optional<std::string> answer_;
};

}  // namespace kvmnet::kernel
