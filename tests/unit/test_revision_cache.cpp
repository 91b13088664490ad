// store::RevisionCache: the cached revision is revision_of's, and a changed
// network gets its new revision (issue 12: GetAll no longer hashes the
// whole document on every call).
#include "model/network.hpp"
#include "store/store.hpp"

#include <catch2/catch.hpp>

using namespace kvmnet;

namespace {

model::Network network(const std::string& name)
{
    model::Network n;
    n.name = name;
    n.bridge = "br-" + name;
    return n;
}

}  // namespace

TEST_CASE("revision cache: the revision is revision_of's and follows every change")
{
    store::RevisionCache cache;
    model::Network a = network("a");
    const std::string first = cache.of(a);
    CHECK(first == store::revision_of(a));
    CHECK(cache.of(a) == first);

    a.autostart = !a.autostart;
    CHECK(cache.of(a) == store::revision_of(a));
    CHECK(cache.of(a) != first);

    model::PortForward f;
    f.host_port_first = f.host_port_last = 8080;
    f.guest_port_first = 80;
    a.forwards.push_back(f);
    CHECK(cache.of(a) == store::revision_of(a));
}

TEST_CASE("revision cache: networks are kept apart by name, and a forgotten name starts afresh")
{
    store::RevisionCache cache;
    const model::Network a = network("a");
    const model::Network b = network("b");
    const std::string ra = cache.of(a);
    CHECK(cache.of(b) == store::revision_of(b));
    CHECK(cache.of(a) == ra);
    CHECK(ra != cache.of(b));
    cache.forget("a");
    CHECK(cache.of(a) == ra);
}
