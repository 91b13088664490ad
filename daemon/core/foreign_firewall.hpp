// Other firewalls that offer kvmnet a supported place for its rules. Today:
// Docker's DOCKER-USER chain (plan/docker_user.hpp), written through
// iptables-nft because that is the tool whose rules Docker's chain holds
// (its comment match is iptables' own; `iptables-nft -S` shows it), in
// table ip filter and, when Docker has ip6tables, ip6 filter. Nothing is
// done while the chain does not exist (Docker not running), and only
// kvmnet's own rules (comment "kvmnet:<network>") are ever inserted or
// deleted. Best effort: a failure is logged and the network stays up;
// diagnose reports what is missing.
#pragma once

#include "model/network.hpp"
#include "plan/foreign_rules.hpp"
#include "plan/kernel_view.hpp"

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace kvmnet::core {

struct CommandResult {
    int status = -1;     // exit status, 128+signal, -1 when it could not run
    std::string output;  // stdout and stderr
    bool timed_out = false;
};
using CommandRunner = std::function<CommandResult(const std::vector<std::string>& argv)>;

// fork + exec, waits for it; output captured (bounded).
CommandResult run_command(const std::vector<std::string>& argv);
// The same, but a command still running after `timeout_ms` is killed (its
// whole process group, by its PID) and reported as timed_out: for commands
// run on the event loop that talk to another daemon which may hang.
CommandResult run_command_timeout(const std::vector<std::string>& argv, int timeout_ms);

// Every table of another program (not inet `our_table`) that has a base
// chain on the forward or input hook, with its rules, as `nft -j list
// table` prints them (plan/foreign_rules.hpp judges them). Reading only;
// nft prints the counters and iptables-nft's rules that libnftnl would
// leave us to decode. nullopt when `nft` is empty or a listing fails
// (logged): then nothing is judged. Never throws.
std::optional<std::vector<plan::ForeignChain>> read_foreign_rules(plan::FirewallAdapter& firewall,
                                                                  const std::string& nft, const std::string& our_table,
                                                                  const CommandRunner& run = run_command);
// The same from a listing of the chains taken before (`chains`; nullopt:
// the listing failed, nothing is judged), so that one listing serves
// several readers.
std::optional<std::vector<plan::ForeignChain>>
read_foreign_rules(const std::optional<std::vector<plan::ChainInfo>>& chains, const std::string& nft,
                   const std::string& our_table, const CommandRunner& run = run_command);

class DockerUser {
public:
    DockerUser(plan::FirewallAdapter& firewall, std::string iptables, std::string ip6tables,
               CommandRunner run = run_command);

    // The networks whose rules belong in DOCKER-USER: NAT, routed and
    // isolated ones (bridge mode carries the host's own address and is
    // left to the host's firewall) with firewall_integration; ip6 only for
    // those with ipv6.
    static bool wanted(const model::Network& n) { return n.mode != model::Mode::bridge && n.firewall_integration; }

    // Makes kvmnet's rules in every existing DOCKER-USER chain exactly
    // those of `running`. Never throws.
    // (The running networks' documents in place: core::Manager's.)
    void sync(const std::vector<const model::Network*>& running);
    // The same from a listing of the chains taken before (nullopt: the
    // listing failed; nothing is done).
    void sync(const std::vector<const model::Network*>& running,
              const std::optional<std::vector<plan::ChainInfo>>& chains);

    // "ip" / "ip6": whether table <family> filter has chain DOCKER-USER now.
    bool chain_exists(const std::string& family);
    // kvmnet's rules for `network` in that family's chain (0, 1 or 2).
    int rules_of(const std::string& family, const std::string& network);

private:
    std::string tool(const std::string& family) const { return family == "ip6" ? ip6tables_ : iptables_; }

    plan::FirewallAdapter& firewall_;
    std::string iptables_, ip6tables_;
    CommandRunner run_;
};

}  // namespace kvmnet::core
