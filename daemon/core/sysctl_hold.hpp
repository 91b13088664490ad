// A sysctl (net.ipv4.ip_forward, net.ipv6.conf.all.forwarding) held on
// while some running network needs it, and put back to the value found
// before when none does. That value is kept in the runtime directory, so a
// daemon restarted in between restores it too.
#pragma once

#include "plan/kernel_view.hpp"

#include <functional>
#include <string>

namespace kvmnet::core {

class SysctlHold {
public:
    // `key`: the /proc/sys path ("net/ipv4/ip_forward"); `saved`: where the
    // value found is kept (store::Layout::saved_sysctl).
    SysctlHold(plan::LinkAdapter& links, std::string key, std::string saved);

    // Turns the sysctl on while `on` holds, and back to what it was when
    // not; `before_enabling` sees the current value and may refuse (throw).
    void want(bool on, const std::function<void(const std::string& current)>& before_enabling = {});

    const std::string& key() const { return key_; }

private:
    plan::LinkAdapter& links_;
    std::string key_;
    std::string saved_;
};

}  // namespace kvmnet::core
