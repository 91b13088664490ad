#include "kernel/feature_probe.hpp"

#include "model/error.hpp"

#include <cerrno>
#include <system_error>

namespace kvmnet::kernel {

std::string FeatureProbe::missing(const std::function<Result()>& probe)
{
    if (answer_) return *answer_;
    const Result result = probe();
    const std::string text = std::error_code(result.error, std::generic_category()).message();
    if (result.error == 0) {
        answer_ = "";
    } else if (result.error == ENOENT || result.error == EOPNOTSUPP) {
        answer_ = "this kernel lacks " + feature_;
        answer_->append(": ").append(result.what).append(" failed: ").append(text);
    } else {
        throw Error(ErrorKind::Kernel, std::string("probing the kernel for ")
                                           .append(feature_)
                                           .append(": ")
                                           .append(result.what)
                                           .append(" failed: ")
                                           .append(text)
                                           .append(" (asked again at the next start)"));
    }
    return *answer_;
}

}  // namespace kvmnet::kernel
