#include "store/layout.hpp"

#include "plan/planner.hpp"

namespace kvmnet::store {
namespace {

constexpr const char* restarting_suffix = ".restarting";
constexpr const char* deleting_suffix = ".deleting";

}  // namespace

Layout::Layout(std::string state_dir, std::string runtime_dir)
    : state_(std::move(state_dir)), runtime_(std::move(runtime_dir))
{
}

std::string Layout::networks_dir() const { return state_ + "/networks"; }
std::string Layout::document(const std::string& network) const { return networks_dir() + "/" + network + ".json"; }
std::string Layout::journal(const std::string& network) const { return networks_dir() + "/" + network + ".forwards"; }

std::string Layout::journal(const std::string& network, std::uint64_t generation) const
{
    std::string path = journal(network);
    path += '.';
    path += std::to_string(generation);
    return path;
}

std::optional<std::uint64_t> Layout::journal_generation(const std::string& file_name, const std::string& network)
{
    const std::string stem = network + ".forwards";
    if (file_name.compare(0, stem.size(), stem) != 0) return std::nullopt;
    if (file_name.size() == stem.size()) return 0;
    if (file_name[stem.size()] != '.' || file_name.size() == stem.size() + 1) return std::nullopt;
    std::uint64_t generation = 0;
    for (std::size_t i = stem.size() + 1; i < file_name.size(); ++i) {
        const char c = file_name[i];
        if (c < '0' || c > '9' || generation > (UINT64_MAX - 9) / 10) return std::nullopt;
        generation = generation * 10 + static_cast<std::uint64_t>(c - '0');
    }
    if (generation == 0) return std::nullopt;
    return generation;
}

std::string Layout::mirror_dir() const { return runtime_ + "/.stored"; }
std::string Layout::mirror(const std::string& network) const { return mirror_dir() + "/" + network + ".json"; }
std::string Layout::committed_table() const { return runtime_ + "/nftables.committed"; }
std::string Layout::frr_fragment() const { return runtime_ + "/frr-evpn.conf"; }
std::string Layout::saved_sysctl(const std::string& key_name) const { return runtime_ + "/" + key_name + ".saved"; }
std::string Layout::restart_marker(const std::string& network) const
{
    return runtime_ + "/" + network + restarting_suffix;
}
std::string Layout::delete_marker(const std::string& network) const
{
    return runtime_ + "/" + network + deleting_suffix;
}

std::optional<std::string> Layout::marker_network(const std::filesystem::path& entry)
{
    const auto extension = entry.extension();
    if (extension != restarting_suffix && extension != deleting_suffix) return std::nullopt;
    return entry.stem().string();
}

std::string Layout::network_dir(const std::string& network) const { return runtime_ + "/" + network; }
std::string Layout::active_marker(const std::string& network) const { return network_dir(network) + "/active"; }
std::string Layout::bridge_creating_marker(const std::string& network) const
{
    return network_dir(network) + "/bridge-creating";
}
std::string Layout::confirm_deadline(const std::string& network) const
{
    return network_dir(network) + "/confirm-deadline";
}
std::string Layout::takeover_record(const std::string& network) const
{
    return network_dir(network) + "/takeover.json";
}
std::string Layout::dnsmasq_leases(const std::string& network) const
{
    return plan::dnsmasq_paths(network_dir(network)).leases;
}

}  // namespace kvmnet::store
