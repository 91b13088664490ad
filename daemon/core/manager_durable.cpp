// What follows a document save that failed after its call returned: the
// store's writer thread could not sync or rename it (store/durable.hpp), so
// the disk still holds the document before it, and memory and kernel go back
// to that one. The caller waiting for the batch hears the error after this.
#include "core/log.hpp"
#include "core/manager.hpp"

namespace kvmnet::core {
namespace {

std::string text_of(std::exception_ptr error)
{
    try {
        if (error) std::rethrow_exception(error);
    } catch (const std::exception& err) {
        return err.what();
    }
    return "unknown error";
}

// Whether `on_disk` is `spec` but for the static hosts of both families
// (and autostart, which is only read when the daemon starts).
bool only_hosts_differ(const model::Network& spec, const model::Network& on_disk)
{
    if (static_cast<bool>(spec.ipv4) != static_cast<bool>(on_disk.ipv4) ||
        static_cast<bool>(spec.ipv6) != static_cast<bool>(on_disk.ipv6))
        return false;
    model::Network expected = spec;
    if (expected.ipv4) expected.ipv4->hosts = on_disk.ipv4->hosts;
    if (expected.ipv6) expected.ipv6->hosts = on_disk.ipv6->hosts;
    expected.autostart = on_disk.autostart;
    return expected == on_disk;
}

}  // namespace

void Manager::document_lost(const std::string& name, std::exception_ptr error)
{
    // A stop in flight ends first (its callers answered, what waited on it
    // run): the network may be erased below, and with it what they wait on.
    settle_stop(name);
    auto it = networks_.find(name);
    // Deleted meanwhile (its document is gone from disk too), or running
    // without a document of its own: nothing was saved for it to undo.
    if (it == networks_.end() || it->second.without_document) return;
    Entry& e = it->second;
    std::vector<std::string> problems;
    std::optional<model::Network> on_disk;
    try {
        on_disk = store_.stored(name, problems);
    } catch (const std::exception& err) {
        log_error("network " + name + ": storing its document failed (" + text_of(error) +
                      ") and the one on disk does not load: " + err.what() + "; memory keeps the change",
                  name);
        return;
    }
    for (const std::string& problem : problems)
        log_warning(problem, name);
    if (!on_disk) {
        // Created in the batch that failed: the network never was.
        log_error("network " + name + ": storing its document failed (" + text_of(error) + "); the creation is undone",
                  name);
        if (e.state != State::inactive) {
            for (const std::string& problem : tear_down(e))
                log_error("network " + name + ": " + problem, name);
        }
        networks_.erase(it);
        if (listener_) listener_->network_removed(name);
        return;
    }
    if (*on_disk == e.spec) return;  // a later save put it back already
    log_error("network " + name + ": storing its document failed (" + text_of(error) +
                  "); the change is undone, the document on disk is in effect again",
              name);
    model::Network kernel_side = *on_disk;
    kernel_side.autostart = e.spec.autostart;  // only read when the daemon starts
    if ((!is_running(e.state) && !e.starting) || kernel_side == e.spec) {
        e.spec = std::move(*on_disk);
        if (listener_) listener_->network_changed(name);
        return;
    }
    // The kernel carries the change. When it is only the static hosts (a
    // failed AddHost or RemoveHost, saved on the writer's thread), they go
    // back and dnsmasq re-reads them (SIGHUP): the network keeps running,
    // the forwards stay in their vector.
    if (!e.starting && only_hosts_differ(e.spec, *on_disk)) {
        if (e.spec.ipv4) e.spec.ipv4->hosts = on_disk->ipv4->hosts;
        if (e.spec.ipv6) e.spec.ipv6->hosts = on_disk->ipv6->hosts;
        e.spec.autostart = on_disk->autostart;
        reload_hosts(e, true);
        return;
    }
    // Otherwise the network is taken down and brought up with the document
    // on disk. Not through update(), which would store it again on the disk
    // that just failed.
    take_document(e, std::move(*on_disk));
}

void Manager::take_document(Entry& e, model::Network n)
{
    const bool running = e.state != State::inactive;
    const auto leases = running ? leases_to_keep(e, n) : std::nullopt;
    if (running) tear_down(e);
    restore_leases(e.spec.name, leases);
    e.spec = std::move(n);
    if (listener_) listener_->network_changed(e.spec.name);
    if (running) {
        bring_up(e, 0, log_outcome(e.spec.name));
    } else {
        set_state(e, State::inactive);
    }
}

}  // namespace kvmnet::core
