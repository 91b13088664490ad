// Unit tests of core::Manager's forward cache (issue 17 item 2: the overlap
// index and the revision's forwards part kept across calls): whatever
// changes a network, by AddForwards, RemoveForward, Update, Reload or
// SetAutostart, the next AddForwards is refused exactly when the model's
// check of the whole documents refuses it, and Revision is the revision of
// the document as stored.
#include "manager_test_prelude.hpp"

#include "model/forward.hpp"
#include "random_forward.hpp"
#include "store/store.hpp"

namespace unit_test_forward_cache {

namespace {

using kvmnet::testing::Lcg;

nlohmann::json random_forward(Lcg& rng, const std::string& prefix)
{
    static const char* const protos[] = {"tcp", "udp", "both"};
    const std::uint32_t first = 1000 + rng.next(120);
    const std::uint32_t last = first + (rng.next(6) == 0 ? rng.next(30) : 0);
    nlohmann::json f = {
        {"proto", protos[rng.next(3)]},
        {"host_port",
         first == last ? nlohmann::json(first) : nlohmann::json(std::to_string(first) + "-" + std::to_string(last))},
        {"guest", prefix + ".10"},
        {"guest_port", first == last ? nlohmann::json(80) : nlohmann::json("80-" + std::to_string(80 + last - first))}};
    if (rng.next(3) != 0) f["host_address"] = "203.0.113." + std::to_string(1 + rng.next(2));
    return f;
}

// The model's answer from plain copies of every document: no cache involved.
bool model_refuses(Manager& m, const std::string& name, const nlohmann::json& forward)
{
    std::vector<kvmnet::model::PortForward> added = kvmnet::model::parse_forwards(forward);
    std::vector<kvmnet::model::Network> copies;
    for (const std::string& n : m.names())
        if (n != name) copies.push_back(m.spec(n));
    std::vector<const kvmnet::model::Network*> others;
    for (const auto& c : copies)
        others.push_back(&c);
    try {
        kvmnet::model::validate_added_forwards(
            m.spec(name), added, [](std::size_t) { return "forward"; }, others);
        return false;
    } catch (const kvmnet::Error&) {
        return true;
    }
}

}  // namespace

TEST_CASE("The manager's forward cache follows every change of a network", "[manager][forward][index]")
{
    Harness h;
    const std::map<std::string, std::string> prefix = {{"a", "10.21.0"}, {"b", "10.22.0"}};
    for (const auto& [name, p] : prefix)
        h.m().create(R"({"name": ")" + name + R"(", "mode": "nat", "bridge": "kvmbr)" + name + R"(", "ipv4":
            {"address": ")" +
                     p + R"(.1/24"}})");
    Lcg rng{3};
    int refused = 0, added = 0;
    for (int step = 0; step < 600; ++step) {
        const std::string name = rng.next(2) == 0 ? "a" : "b";
        const std::uint32_t what = rng.next(20);
        if (what == 0) {
            // Update: the document with its forwards shuffled, one dropped.
            nlohmann::json doc = kvmnet::model::to_json(h.m().spec(name));
            if (doc.contains("forwards") && !doc["forwards"].empty()) {
                auto& f = doc["forwards"];
                f.erase(f.begin() + rng.next(static_cast<std::uint32_t>(f.size())));
                std::reverse(f.begin(), f.end());
            }
            h.m().update(name, doc.dump());
        } else if (what == 1) {
            h.m().set_autostart(name, rng.next(2) == 0);
        } else if (what == 2) {
            h.m().reload();
        } else if (what < 7 && !h.m().spec(name).forwards.empty()) {
            const auto& forwards = h.m().spec(name).forwards;
            const auto key =
                kvmnet::model::forward_key(forwards[rng.next(static_cast<std::uint32_t>(forwards.size()))]);
            h.m().remove_forward(name, key);
        } else {
            const nlohmann::json f = random_forward(rng, prefix.at(name));
            const bool expected = model_refuses(h.m(), name, f);
            bool refusal = false;
            try {
                h.m().add_forwards(name, f.dump());
            } catch (const kvmnet::Error& e) {
                refusal = true;
                CHECK(e.kind() == kvmnet::ErrorKind::Conflict);
            }
            CAPTURE(step, name, f.dump());
            REQUIRE(refusal == expected);
            (refusal ? refused : added) += 1;
        }
        for (const auto& [n, p] : prefix)
            REQUIRE(h.m().revision(n) == kvmnet::store::revision_of(h.m().spec(n)));
    }
    CHECK(refused > 20);
    CHECK(added > 20);
}

}  // namespace unit_test_forward_cache
