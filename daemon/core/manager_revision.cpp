// Revision-checked updates: the check sits in front of the one update path,
// which stays as it is.
#include "core/manager.hpp"
#include "store/store.hpp"

namespace kvmnet::core {

std::string Manager::revision(const std::string& name) const
{
    const Entry& e = entry(name);
    return reads_.revision(e.spec, forward_cache(e).revision_part);
}

void Manager::update_at_revision(const std::string& name, const std::string& document, const std::string& revision)
{
    wait([&](Done done) { update_at_revision(name, document, revision, std::move(done)); });
}

void Manager::update_at_revision(const std::string& name, const std::string& document, const std::string& revision,
                                 Done done)
{
    // Checked when the call runs (after authorization, which may have waited
    // for polkit), on the event loop that serializes every change.
    try {
        if (revision.empty())
            throw Error(ErrorKind::InvalidArgument, "revision: required (Update replaces without a check)");
        const std::string current = this->revision(name);
        if (revision != current)
            throw Error(ErrorKind::Conflict, "network '" + name + "' changed since revision " + revision +
                                                 " was read (now " + current + "); read it again and redo the change");
    } catch (...) {
        done(std::current_exception());
        return;
    }
    update(name, document, std::move(done));
}

}  // namespace kvmnet::core
