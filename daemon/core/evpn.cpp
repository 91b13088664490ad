#include "core/evpn.hpp"

#include "core/log.hpp"
#include "model/error.hpp"
#include "store/files.hpp"

#include <algorithm>
#include <filesystem>
#include <sstream>

namespace kvmnet::core {

namespace {

constexpr const char* timeout_message = "FRR does not answer (timeout)";

std::string trimmed(std::string s)
{
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r'))
        s.pop_back();
    return s;
}

}  // namespace

std::optional<plan::EvpnNetwork>
evpn_network(const model::Network& n, const std::function<std::optional<model::Ipv4>(const std::string&)>& local)
{
    if (!n.overlay || !n.overlay->evpn) return std::nullopt;
    const model::Overlay& o = *n.overlay;
    plan::EvpnNetwork e;
    e.network = n.name;
    e.vni = o.vni;
    e.bridge = n.bridge;
    e.vxlan = model::overlay_device_name(o.vni);
    if (o.local)
        e.local = o.local;
    else if (!o.local_interface.empty() && local)
        e.local = local(o.local_interface);
    e.asn = o.evpn->asn;
    for (const model::Ipv4& a : o.evpn->neighbors)
        e.neighbors.push_back(a.str());
    if (o.evpn->route_reflector) e.neighbors.push_back(o.evpn->route_reflector->str());
    return e;
}

Evpn::Evpn(std::string vtysh, std::string vty_socket, std::string fragment_path, CommandRunner run, int timeout_ms)
    : vtysh_(std::move(vtysh)), vty_socket_(std::move(vty_socket)), fragment_path_(std::move(fragment_path)),
      run_(std::move(run))
{
    if (!run_)
        run_ = [timeout_ms](const std::vector<std::string>& argv) { return run_command_timeout(argv, timeout_ms); };
}

CommandResult Evpn::vtysh(const std::vector<std::string>& args)
{
    std::vector<std::string> argv{vtysh_};
    if (!vty_socket_.empty()) {
        argv.push_back("--vty_socket");
        argv.push_back(vty_socket_);
    }
    argv.insert(argv.end(), args.begin(), args.end());
    return run_(argv);
}

std::vector<std::string> Evpn::show(const std::vector<std::string>& commands, std::string& error)
{
    std::vector<std::string> args{"-E"};
    for (const std::string& c : commands) {
        args.push_back("-c");
        args.push_back(c);
    }
    const CommandResult r = vtysh(args);
    std::vector<std::string> out(commands.size());
    if (r.timed_out) {
        error = timeout_message;
        return out;
    }
    if (r.status == 127 || r.status < 0) {
        error = "cannot run " + vtysh_ + " (is FRR installed? see docs/overlay.md)";
        return out;
    }
    if (r.status != 0) {
        error = "FRR does not answer: " + trimmed(r.output);
        return out;
    }
    // -E echoes "HOSTNAME# COMMAND" before each command's output.
    std::istringstream in(r.output);
    std::string line;
    std::size_t next = 0;
    std::size_t current = commands.size();
    while (std::getline(in, line)) {
        const std::string echo = "# " + commands[std::min(next, commands.size() - 1)];
        if (next < commands.size() && line.size() >= echo.size() &&
            line.compare(line.size() - echo.size(), echo.size(), echo) == 0) {
            current = next++;
            continue;
        }
        if (current < commands.size()) out[current] += line + "\n";
    }
    return out;
}

void Evpn::apply(const std::string& text)
{
    store::write_replace(fragment_path_ + ".apply", text);
    const CommandResult r = vtysh({"-f", fragment_path_ + ".apply"});
    std::error_code ignored;
    std::filesystem::remove(fragment_path_ + ".apply", ignored);
    if (r.timed_out) throw Error(ErrorKind::Kernel, std::string(timeout_message) + " applying kvmnet's configuration");
    if (r.status != 0)
        throw Error(ErrorKind::Kernel, "FRR refused kvmnet's configuration (vtysh -f, exit status " +
                                           std::to_string(r.status) + "): " + trimmed(r.output));
}

void Evpn::check(const std::vector<plan::EvpnNetwork>& running)
{
    const std::optional<plan::FrrConfig> wanted = plan::frr_config(running);  // throws on differing ASNs
    if (!wanted) return;
    std::string error;
    const std::vector<std::string> out = show({"show running-config"}, error);
    if (!error.empty()) return;  // applied once FRR answers
    plan::check_frr_conflicts(plan::parse_frr_running(out[0]), *wanted);
}

void Evpn::sync(const std::vector<plan::EvpnNetwork>& running, bool force)
{
    running_ = running;
    std::optional<plan::FrrConfig> wanted;
    std::string problem;
    try {
        wanted = plan::frr_config(running);
    } catch (const std::exception& e) {
        problem = e.what();
    }
    if (problem.empty()) {
        wanted_ = wanted;
        // Nothing of ours is known to be in FRR: nothing to ask it.
        if (!wanted && !applied_) {
            problem_.clear();
            return;
        }
        if (!force && problem_.empty() && applied_ == wanted) return;
        try {
            std::string error;
            const std::vector<std::string> out = show({"show running-config"}, error);
            if (!error.empty()) {
                // A stopped FRR keeps none of kvmnet's part: nothing to remove later.
                if (!wanted) applied_.reset();
                throw Error(ErrorKind::Unsupported, error);
            }
            const plan::FrrRunning r = plan::parse_frr_running(out[0]);
            if (wanted) plan::check_frr_conflicts(r, *wanted);
            const std::string removal = plan::render_frr_removal(r, wanted);
            if (!removal.empty()) apply(removal);
            std::error_code ignored;
            if (wanted) {
                const std::string fragment = plan::render_frr_fragment(*wanted, r.dad_is_ours());
                store::write_replace(fragment_path_, fragment);
                apply(fragment);
            } else {
                std::filesystem::remove(fragment_path_, ignored);
            }
            if (applied_ != wanted || force)
                log_info(wanted ? "FRR: kvmnet's EVPN configuration applied (AS " + std::to_string(wanted->asn) + ", " +
                                      std::to_string(wanted->neighbors.size()) + " neighbours)"
                                : std::string("FRR: kvmnet's EVPN configuration removed"));
            applied_ = wanted;
        } catch (const std::exception& e) {
            problem = e.what();
        }
    }
    if (!problem.empty() && problem != problem_) log_warning("FRR: " + problem);
    problem_ = problem;
}

void Evpn::refresh()
{
    refreshed_ = std::chrono::steady_clock::now();
    if (!wanted_) {
        status_ = {};
        return;
    }
    std::string error;
    const std::vector<std::string> out = show({"show bgp l2vpn evpn summary json", "show evpn vni json",
                                               "show evpn mac vni all json", "show evpn arp-cache vni all json"},
                                              error);
    plan::FrrStatus s;
    if (!error.empty()) {
        s.error = error;
    } else {
        s.reachable = true;
        s.peers = plan::parse_bgp_evpn_summary(out[0]);
        s.vnis = plan::parse_evpn_vnis(out[1]);
        plan::add_evpn_remotes(s.vnis, out[2], out[3]);
    }
    status_ = std::move(s);
    if (!status_.reachable) return;
    // FRR restarted (its running configuration is gone with it), someone
    // removed kvmnet's part, or the last sync failed: apply it again.
    bool lost = !problem_.empty();
    for (const std::string& a : wanted_->neighbors)
        lost = lost || std::none_of(status_.peers.begin(), status_.peers.end(),
                                    [&](const plan::BgpPeer& p) { return p.neighbor == a; });
    if (lost) sync(running_, true);
}

void Evpn::refresh_if_stale()
{
    if (std::chrono::steady_clock::now() - refreshed_ >= std::chrono::seconds(1)) refresh();
}

}  // namespace kvmnet::core
