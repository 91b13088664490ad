#include "core/sysctl_hold.hpp"

#include "store/files.hpp"

#include <filesystem>

namespace kvmnet::core {
namespace {

std::string first_word(const std::string& text) { return text.substr(0, text.find_first_of(" \n")); }

}  // namespace

SysctlHold::SysctlHold(plan::LinkAdapter& links, std::string key, std::string saved)
    : links_(links), key_(std::move(key)), saved_(std::move(saved))
{
}

void SysctlHold::want(bool on, const std::function<void(const std::string& current)>& before_enabling)
{
    const bool have_saved = std::filesystem::exists(saved_);
    if (on && !have_saved) {
        const std::string current = first_word(links_.read_sysctl(key_).value_or("0"));
        if (before_enabling) before_enabling(current);
        store::write_replace(saved_, current + "\n");
        if (current != "1") links_.write_sysctl(key_, "1");
    } else if (!on && have_saved) {
        const std::string previous = first_word(store::read_file(saved_).value_or("0"));
        if (previous != "1") links_.write_sysctl(key_, previous);
        store::remove_file(saved_);
    }
}

}  // namespace kvmnet::core
