// Docker's DOCKER-USER chain (iptables-nft: nftables "table ip filter" and
// "table ip6 filter"), the place Docker documents for the host's own rules:
// its FORWARD chain jumps there first, before its policy drop. kvmnet puts
// two accept rules per running network there (traffic in on the bridge,
// traffic out on it), each marked with the comment "kvmnet:<network>", so
// Docker's drop does not override kvmnet's own forward chain, which still
// decides what guests may do (inet kvmnet guest_forward). Pure planning:
// from `iptables-nft -S DOCKER-USER` to the iptables commands that make
// kvmnet's rules exactly the wanted ones; no other rule is ever named.
#pragma once

#include <string>
#include <vector>

namespace kvmnet::plan {

inline constexpr const char* docker_user_chain = "DOCKER-USER";
inline constexpr const char* docker_user_comment_prefix = "kvmnet:";

struct DockerUserNetwork {
    std::string name;    // the network: the rules' comment is "kvmnet:<name>"
    std::string bridge;  // its bridge
};

// One rule of kvmnet's: direction "-i" (from the guests) or "-o" (to them).
struct DockerUserRule {
    std::string network;
    std::string direction;
    std::string bridge;
    bool operator==(const DockerUserRule&) const = default;
    // The iptables rule specification, after "-I DOCKER-USER" / "-D DOCKER-USER".
    std::vector<std::string> spec() const;
};

// The rules kvmnet wants for these networks.
std::vector<DockerUserRule> docker_user_rules(const std::vector<DockerUserNetwork>& networks);

// kvmnet's rules in the output of `iptables-nft -S DOCKER-USER`: the "-A
// DOCKER-USER" lines whose comment starts with "kvmnet:" and that match on
// one interface and accept. Every other line (Docker's RETURN, the
// administrator's rules) is not kvmnet's and is left out.
std::vector<DockerUserRule> parse_docker_user(const std::string& listing);

struct DockerUserPlan {
    std::vector<DockerUserRule> remove;  // kvmnet's rules no longer wanted (stopped networks)
    std::vector<DockerUserRule> insert;  // wanted rules that are missing
    bool empty() const { return remove.empty() && insert.empty(); }
};

DockerUserPlan plan_docker_user(const std::string& listing, const std::vector<DockerUserNetwork>& networks);

}  // namespace kvmnet::plan
