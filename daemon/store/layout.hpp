// Every file and directory the daemon keeps, in one place: STATE survives
// reboots (the desired state), RUNTIME does not (what runs now, and the
// records that let a restarted daemon adopt it or finish an interrupted
// change). Nothing else in the daemon builds a path under either.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace kvmnet::store {

class Layout {
public:
    Layout(std::string state_dir, std::string runtime_dir);

    const std::string& state_dir() const { return state_; }
    const std::string& runtime_dir() const { return runtime_; }

    // STATE/networks: NAME.json, the document; NAME.forwards, its journal;
    // NAME.forwards.GENERATION, the journal begun by a save that is not
    // durable yet (store/store.hpp), renamed to NAME.forwards once it is.
    std::string networks_dir() const;
    std::string document(const std::string& network) const;
    std::string journal(const std::string& network) const;
    std::string journal(const std::string& network, std::uint64_t generation) const;
    // The generation of a journal's file name of `network` (0: NAME.forwards),
    // nullopt when the name is not one of its journals.
    static std::optional<std::uint64_t> journal_generation(const std::string& file_name, const std::string& network);

    // RUNTIME/.stored/NAME.json: the last document that loaded (a network
    // whose stored file breaks runs on with it). ".stored" cannot be a
    // network's runtime directory: names start with a letter or digit.
    std::string mirror_dir() const;
    std::string mirror(const std::string& network) const;
    // RUNTIME/nftables.committed: core/committed_table.hpp.
    std::string committed_table() const;
    // RUNTIME/frr-evpn.conf: kvmnet's part of FRR's configuration as last
    // applied (core/evpn.hpp), for people to read.
    std::string frr_fragment() const;
    // RUNTIME/KEY.saved: a sysctl's value from before the daemon held it on.
    std::string saved_sysctl(const std::string& key_name) const;
    // RUNTIME/NAME.restarting holds the old bridge's name while an Update
    // restarts the network; RUNTIME/NAME.deleting marks a DeleteNetwork.
    std::string restart_marker(const std::string& network) const;
    std::string delete_marker(const std::string& network) const;
    // The network a restart or delete marker belongs to; nullopt for any
    // other entry of RUNTIME.
    static std::optional<std::string> marker_network(const std::filesystem::path& entry);

    // RUNTIME/NAME: exists while the network runs (or a stop did not finish).
    std::string network_dir(const std::string& network) const;
    std::string active_marker(const std::string& network) const;  // written last by a start
    // Names the bridge being created until it carries the owner alias (the
    // kernel takes no alias with the creation): a crash in between leaves a
    // bridge this file still tells is ours.
    std::string bridge_creating_marker(const std::string& network) const;
    std::string confirm_deadline(const std::string& network) const;  // Unix time, while unconfirmed
    std::string takeover_record(const std::string& network) const;   // bridge mode: what moved
    // The dnsmasq files of a network are plan::dnsmasq_paths(network_dir(NAME)).
    std::string dnsmasq_leases(const std::string& network) const;

private:
    std::string state_;
    std::string runtime_;
};

}  // namespace kvmnet::store
