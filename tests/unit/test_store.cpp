// Unit tests of store/: atomic file replacement and the JSON store of
// desired state (round trip, skipping and reporting bad files, removal), each
// in a fresh temporary directory that is removed afterwards.
#include "model/network.hpp"
#include "store/files.hpp"
#include "store/store.hpp"
#include "store_util.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <sys/resource.h>
#include <sys/stat.h>
#include <vector>

namespace unit_test_store {

using kvmnet::model::Network;
namespace fs = std::filesystem;

namespace {

using kvmnet::testing::TempDir;

Network network(const std::string& text) { return kvmnet::model::parse_network(text); }

Network first()
{
    return network(R"({"name": "default", "mode": "nat", "bridge": "kvmbr0", "autostart": true, "uplink": "eth0",
                       "ipv4": {"address": "192.168.122.1/24",
                                "dhcp": {"ranges": ["192.168.122.100-192.168.122.254"],
                                         "hosts": [{"mac": "52:54:00:12:34:56", "ip": "192.168.122.10",
                                                    "name": "web"}]}},
                       "stp": true, "forward_delay": 2, "mtu": 1400})");
}

Network second()
{
    return network(R"({"name": "lab", "mode": "isolated", "bridge": "kvmbr1", "ipv4": {"address": "10.10.0.1/24"}})");
}

std::vector<std::string> directory_entries(const std::string& dir)
{
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir))
        names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

}  // namespace

TEST_CASE("Saved networks load back equal, in name order", "[store]")
{
    TempDir tmp;
    const kvmnet::store::Store store(kvmnet::store::Layout(tmp.path, ""));
    CHECK(fs::is_directory(tmp.path + "/networks"));
    store.save(second());
    store.save(first());
    CHECK(store.path_of("lab") == tmp.path + "/networks/lab.json");
    CHECK(directory_entries(tmp.path + "/networks") == std::vector<std::string>{"default.json", "lab.json"});

    std::vector<std::string> problems;
    const auto loaded = kvmnet::test::load_all(store, problems);
    CHECK(problems.empty());
    REQUIRE(loaded.size() == 2);
    CHECK(loaded[0] == first());
    CHECK(loaded[1] == second());

    SECTION("a second Store on the same directory sees the same networks")
    {
        std::vector<std::string> again_problems;
        CHECK(kvmnet::test::load_all(kvmnet::store::Store(kvmnet::store::Layout(tmp.path, "")), again_problems) ==
              loaded);
        CHECK(again_problems.empty());
    }
    SECTION("saving again replaces the document")
    {
        Network changed = second();
        changed.autostart = true;
        store.save(changed);
        std::vector<std::string> p;
        const auto reloaded = kvmnet::test::load_all(store, p);
        REQUIRE(reloaded.size() == 2);
        CHECK(reloaded[1].autostart);
    }
}

TEST_CASE("An empty store loads nothing and reports nothing", "[store]")
{
    TempDir tmp;
    std::vector<std::string> problems;
    CHECK(kvmnet::test::load_all(kvmnet::store::Store(kvmnet::store::Layout(tmp.path, "")), problems).empty());
    CHECK(problems.empty());
}

TEST_CASE("Bad files are reported in problems and skipped while valid ones load", "[store]")
{
    TempDir tmp;
    const kvmnet::store::Store store(kvmnet::store::Layout(tmp.path, ""));
    store.save(second());
    const std::string dir = tmp.path + "/networks";
    kvmnet::store::write_atomic(dir + "/broken.json", "{\"name\": \"broken\", ");
    // A valid document stored under the wrong file name.
    kvmnet::store::write_atomic(dir + "/other.json", kvmnet::model::to_json(first()).dump());
    // A valid document that fails validation.
    kvmnet::store::write_atomic(dir + "/bad.json", R"({"name": "bad", "mode": "nat"})");
    // Files without the .json extension are ignored entirely.
    kvmnet::store::write_atomic(dir + "/notes.txt", "not a network");
    kvmnet::store::write_atomic(dir + "/lab.json.tmp", "{");

    std::vector<std::string> problems;
    const auto loaded = kvmnet::test::load_all(store, problems);
    REQUIRE(loaded.size() == 1);
    CHECK(loaded[0] == second());
    REQUIRE(problems.size() == 3);
    // Problems come in file name order: bad, broken, other.
    CHECK_THAT(problems[0], Catch::Matchers::StartsWith(dir + "/bad.json: ") && Catch::Matchers::Contains("ipv4"));
    CHECK_THAT(problems[1],
               Catch::Matchers::StartsWith(dir + "/broken.json: ") && Catch::Matchers::Contains("not valid JSON"));
    CHECK_THAT(problems[2], Catch::Matchers::StartsWith(dir + "/other.json: ") &&
                                Catch::Matchers::Contains("'default'") &&
                                Catch::Matchers::Contains("does not match the file name"));
}

TEST_CASE("remove deletes a stored network and tolerates an absent one", "[store]")
{
    TempDir tmp;
    const kvmnet::store::Store store(kvmnet::store::Layout(tmp.path, ""));
    store.save(first());
    store.save(second());
    store.remove("default");
    CHECK_FALSE(fs::exists(store.path_of("default")));
    std::vector<std::string> problems;
    const auto loaded = kvmnet::test::load_all(store, problems);
    REQUIRE(loaded.size() == 1);
    CHECK(loaded[0].name == "lab");
    CHECK_NOTHROW(store.remove("default"));
    CHECK_NOTHROW(store.remove("never-existed"));
}

TEST_CASE("write_atomic replaces the contents and leaves no temporary file", "[store][files]")
{
    TempDir tmp;
    const std::string path = tmp.path + "/file.conf";
    kvmnet::store::write_atomic(path, "first version, rather long\n");
    CHECK(kvmnet::store::read_file(path) == std::string("first version, rather long\n"));
    kvmnet::store::write_atomic(path, "second\n");
    CHECK(kvmnet::store::read_file(path) == std::string("second\n"));
    kvmnet::store::write_atomic(path, "");
    CHECK(kvmnet::store::read_file(path) == std::string());
    CHECK(directory_entries(tmp.path) == std::vector<std::string>{"file.conf"});

    SECTION("with the requested permissions, whatever the umask")
    {
        const std::string secret = tmp.path + "/secret";
        const mode_t old = ::umask(0077);
        kvmnet::store::write_atomic(secret, "x", 0640);
        ::umask(old);
        struct stat st {};
        REQUIRE(::stat(secret.c_str(), &st) == 0);
        CHECK((st.st_mode & 07777) == 0640);
    }
    SECTION("binary contents survive unchanged")
    {
        const std::string bytes("a\0b\xff\n", 5);
        kvmnet::store::write_atomic(path, bytes);
        CHECK(kvmnet::store::read_file(path) == bytes);
    }
}

TEST_CASE("write_atomic into a missing directory throws kvmnet::Error and creates nothing", "[store][files]")
{
    TempDir tmp;
    const std::string path = tmp.path + "/missing/file.conf";
    try {
        kvmnet::store::write_atomic(path, "x");
        FAIL("write_atomic succeeded in a missing directory");
    } catch (const kvmnet::Error& e) {
        CHECK(e.kind() == kvmnet::ErrorKind::Kernel);
        CHECK_THAT(std::string(e.what()), Catch::Matchers::Contains(tmp.path + "/missing/"));
    }
    CHECK(directory_entries(tmp.path).empty());
}

TEST_CASE("read_file of a missing file is empty, not an error", "[store][files]")
{
    TempDir tmp;
    CHECK_FALSE(kvmnet::store::read_file(tmp.path + "/nope"));
}

TEST_CASE("The forwards journal replays onto the document, idempotently, ignoring a torn last line", "[store]")
{
    TempDir tmp;
    kvmnet::store::Store store(kvmnet::store::Layout(tmp.path, ""));
    Network n = kvmnet::model::parse_network(R"({"name": "web", "mode": "nat", "bridge": "kvmbr5",
        "ipv4": {"address": "10.5.0.1/24"},
        "forwards": [{"proto": "tcp", "host_port": 80, "guest": "10.5.0.10", "guest_port": 80}]})");
    store.save(n);
    const auto forward = [](std::uint16_t port, const char* guest = "10.5.0.11") {
        return kvmnet::model::parse_forward(
            nlohmann::json{{"proto", "tcp"}, {"host_port", port}, {"guest", guest}, {"guest_port", 22}});
    };
    store.journal_add("web", {forward(2222), forward(2223)});
    store.journal_remove("web", kvmnet::model::make_forward_key("tcp", "", 80));
    store.journal_add("web", {forward(2222, "10.5.0.12")});  // replaced: same key
    const auto ports = [&](std::vector<std::string>& problems) {
        const auto loaded = kvmnet::test::load_all(store, problems);
        REQUIRE(loaded.size() == 1);
        std::vector<std::string> out;
        for (const auto& f : loaded[0].forwards)
            out.push_back(std::to_string(f.host_port_first) + ">" + f.guest.str());
        return out;
    };
    std::vector<std::string> problems;
    const std::vector<std::string> expected{"2223>10.5.0.11", "2222>10.5.0.12"};
    CHECK(ports(problems) == expected);
    CHECK(problems.empty());

    SECTION("replaying onto a document that already holds the changes gives the same")
    {
        // As after a crash between writing the document and dropping the journal.
        const std::string journal = tmp.path + "/networks/web.forwards";
        const std::string lines = *kvmnet::store::read_file(journal);
        std::vector<std::string> none;
        Network folded = kvmnet::test::load_all(store, none)[0];
        store.save(folded);
        kvmnet::store::write_atomic(journal, lines);
        CHECK(ports(problems) == expected);
    }
    SECTION("Regression: a journal written before the document was last saved is not replayed")
    {
        // A crash between save() writing the document and dropping the
        // journal: the document overrules the journal, which must not bring
        // back a forward the new document removed.
        const std::string journal = tmp.path + "/networks/web.forwards";
        const std::string lines = *kvmnet::store::read_file(journal);
        std::vector<std::string> none;
        Network updated = kvmnet::test::load_all(store, none)[0];
        updated.forwards.pop_back();
        store.save(updated);
        kvmnet::store::write_atomic(journal, lines);
        const std::vector<std::string> only_first{"2223>10.5.0.11"};
        CHECK(ports(problems) == only_first);
        CHECK(problems.empty());
        // The daemon folds at start (save drops the stale journal); appends
        // after that start a journal of their own.
        store.save(kvmnet::test::load_all(store, none)[0]);
        store.journal_add("web", {forward(2224, "10.5.0.13")});
        const std::vector<std::string> both{"2223>10.5.0.11", "2224>10.5.0.13"};
        CHECK(ports(problems) == both);
    }
    SECTION("a torn last line is ignored silently, a bad line in the middle is reported")
    {
        const std::string journal = tmp.path + "/networks/web.forwards";
        const std::string lines = *kvmnet::store::read_file(journal);
        kvmnet::store::write_atomic(journal, lines + R"({"add": [{"proto": "tcp", "host_po)");
        CHECK(ports(problems) == expected);
        CHECK(problems.empty());
        kvmnet::store::write_atomic(journal, "garbage\n" + lines);
        CHECK(ports(problems) == expected);
        REQUIRE(problems.size() == 1);
        CHECK(problems[0].find("web.forwards:1: not JSON") != std::string::npos);
    }
    SECTION("save folds the journal into the document")
    {
        std::vector<std::string> none;
        store.save(kvmnet::test::load_all(store, none)[0]);
        CHECK_FALSE(fs::exists(tmp.path + "/networks/web.forwards"));
        CHECK(ports(problems) == expected);
    }
}

namespace {

Network web_network()
{
    return kvmnet::model::parse_network(R"({"name": "web", "mode": "nat", "bridge": "kvmbr5",
        "ipv4": {"address": "10.5.0.1/24"}})");
}

kvmnet::model::PortForward forward_to(std::uint16_t port)
{
    return kvmnet::model::parse_forward(
        nlohmann::json{{"proto", "tcp"}, {"host_port", port}, {"guest", "10.5.0.11"}, {"guest_port", 22}});
}

std::vector<std::uint16_t> stored_ports(const kvmnet::store::Store& store, std::vector<std::string>& problems)
{
    const auto loaded = kvmnet::test::load_all(store, problems);
    REQUIRE(loaded.size() == 1);
    std::vector<std::uint16_t> out;
    for (const auto& f : loaded[0].forwards)
        out.push_back(f.host_port_first);
    return out;
}

// Lowers the file size limit of this process, so the next write past it is
// short (as on a full disk); SIGXFSZ is ignored meanwhile.
class FileSizeLimit {
public:
    explicit FileSizeLimit(rlim_t bytes)
    {
        REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved_) == 0);
        old_handler_ = ::signal(SIGXFSZ, SIG_IGN);
        rlimit lower = saved_;
        lower.rlim_cur = bytes;
        REQUIRE(::setrlimit(RLIMIT_FSIZE, &lower) == 0);
    }
    ~FileSizeLimit()
    {
        ::setrlimit(RLIMIT_FSIZE, &saved_);
        ::signal(SIGXFSZ, old_handler_);
    }
    FileSizeLimit(const FileSizeLimit&) = delete;
    FileSizeLimit& operator=(const FileSizeLimit&) = delete;

private:
    rlimit saved_{};
    sighandler_t old_handler_ = SIG_DFL;
};

}  // namespace

TEST_CASE("Regression: a journal append cut short (full disk) leaves the journal as it was", "[store]")
{
    TempDir tmp;
    kvmnet::store::Store store(kvmnet::store::Layout(tmp.path, ""));
    store.save(web_network());
    store.journal_add("web", {forward_to(7001)});
    const std::string journal = tmp.path + "/networks/web.forwards";
    const std::string before = *kvmnet::store::read_file(journal);
    {
        FileSizeLimit limit(before.size() + 10);
        CHECK_THROWS_WITH(store.journal_add("web", {forward_to(7002)}), Catch::Contains("short write"));
    }
    CHECK(*kvmnet::store::read_file(journal) == before);
    // Space again: the next append is a line of its own and loads.
    store.journal_add("web", {forward_to(7777)});
    std::vector<std::string> problems;
    CHECK(stored_ports(store, problems) == std::vector<std::uint16_t>{7001, 7777});
    CHECK(problems.empty());
}

TEST_CASE("Regression: a line appended after a fragment of a failed write is not lost", "[store]")
{
    TempDir tmp;
    kvmnet::store::Store store(kvmnet::store::Layout(tmp.path, ""));
    store.save(web_network());
    store.journal_add("web", {forward_to(7001)});
    const std::string journal = tmp.path + "/networks/web.forwards";
    const std::string lines = *kvmnet::store::read_file(journal);
    const std::string fragment = R"({"add":[{"guest":"10.5.0.11","guest_port":22,"host_po)";
    std::vector<std::string> problems;

    SECTION("the next append starts on a line of its own")
    {
        // What a short write of an earlier version (or a crash) left.
        kvmnet::store::write_atomic(journal, lines + fragment);
        store.journal_add("web", {forward_to(7777)});
        CHECK(stored_ports(store, problems) == std::vector<std::uint16_t>{7001, 7777});
        CHECK(problems.empty());
        CHECK(kvmnet::store::read_file(journal)->find("host_po{") == std::string::npos);
    }
    SECTION("a journal that already has the glued line gives the line back")
    {
        const std::string glued = R"({"add":[{"guest":"10.5.0.11","guest_port":22,"host_port":7777,"proto":"tcp"}]})";
        kvmnet::store::write_atomic(journal, lines + fragment + glued + "\n");
        CHECK(stored_ports(store, problems) == std::vector<std::uint16_t>{7001, 7777});
        CHECK(problems.empty());
    }
}

TEST_CASE("A document that does not load is named in unreadable; the mirror keeps the last good one", "[store]")
{
    TempDir state;
    TempDir runtime;
    const std::string mirror = runtime.path + "/.stored";
    kvmnet::store::Store store(kvmnet::store::Layout(state.path, runtime.path));
    store.save(web_network());
    store.journal_add("web", {forward_to(7001)});
    CHECK(*kvmnet::store::read_file(mirror + "/web.json") == *kvmnet::store::read_file(store.path_of("web")));

    // A hand edit that does not parse.
    kvmnet::store::write_atomic(store.path_of("web"), R"({"name": "web", "mode": "nat", "bogus": 1})");
    std::vector<std::string> problems;
    const auto loaded = store.load(problems);
    CHECK(loaded.networks.empty());
    REQUIRE(loaded.unreadable.count("web") == 1);
    CHECK(loaded.unreadable.at("web").find("bogus") != std::string::npos);
    // load() copies only documents that load: the last good one stays, its journal replays onto it.
    const auto last = store.last_good("web", problems);
    REQUIRE(last);
    REQUIRE(last->forwards.size() == 1);
    CHECK(last->forwards[0].host_port_first == 7001);
    CHECK(problems.empty());

    store.remove("web");
    CHECK_FALSE(fs::exists(mirror + "/web.json"));
    CHECK_FALSE(store.last_good("web", problems));
}

}  // namespace unit_test_store
