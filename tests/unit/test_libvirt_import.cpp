// Unit tests of client/libvirt_import: libvirt network XML files under
// tests/data/libvirt, each converted and compared with its golden result
// (NAME.json: the document, the notes with their lines, the error), and the
// details that are easier to see alone (netmasks, line numbers, formats).
// Set KVMNET_UPDATE_GOLDEN=1 to (re)write the golden files; review the diff.
#include "libvirt_import.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace unit_test_libvirt_import {

using kvmnet::libvirt::Conversion;
using kvmnet::libvirt::convert;
using json = nlohmann::json;

namespace {

std::string read(const std::string& path)
{
    std::ifstream in(path);
    REQUIRE(in);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

json result(const std::string& file, const Conversion& c)
{
    json notes = json::array();
    for (const auto& n : c.notes)
        notes.push_back(kvmnet::libvirt::format_note(file, n) + (n.lossy ? "" : "  [info]"));
    json r = {{"notes", notes}};
    if (c.ok())
        r["document"] = c.document;
    else
        r["error"] = kvmnet::libvirt::format_error(file, c);
    return r;
}

void check_golden(const std::string& name, bool autostart)
{
    const std::string dir = LIBVIRT_DATA_DIR;
    const Conversion c = convert(read(dir + "/" + name + ".xml"), autostart);
    const json actual = result(name + ".xml", c);
    const std::string golden = dir + "/" + name + ".json";
    if (std::getenv("KVMNET_UPDATE_GOLDEN")) {
        std::ofstream(golden) << actual.dump(2) << "\n";
        return;
    }
    INFO("golden file " << golden << " (KVMNET_UPDATE_GOLDEN=1 rewrites it)");
    CHECK(actual.dump(2) == json::parse(read(golden)).dump(2));
}

}  // namespace

TEST_CASE("libvirt XML files convert to their golden documents", "[libvirt]")
{
    // default.xml stands for a network with libvirt's autostart link.
    check_golden("default", true);
    for (const char* name : {"nat-hosts", "routed-dual", "open", "isolated-dns", "bridge", "nat66", "unmapped",
                             "macvtap", "bad-host", "bridge-no-uplink", "dhcp6-hosts"}) {
        SECTION(name) { check_golden(name, false); }
    }
}

TEST_CASE("libvirt import: what is lost decides --strict", "[libvirt]")
{
    const std::string dir = LIBVIRT_DATA_DIR;
    // Only information: the uuid, STP's 2 s minimum delay.
    const Conversion plain = convert(R"(<network>
  <name>plain</name>
  <uuid>3e3fce45-4f53-4fa7-bb32-11f34168b82b</uuid>
  <forward mode='nat'/>
  <ip address='10.1.0.1' netmask='255.255.0.0'/>
</network>)",
                                     false);
    REQUIRE(plain.ok());
    CHECK_FALSE(plain.lossy());
    CHECK(plain.notes.size() == 2);
    CHECK(plain.document == json::parse(R"({"name": "plain", "mode": "nat", "stp": true, "forward_delay": 2,
                                            "ipv4": {"address": "10.1.0.1/16"}})"));
    CHECK(convert(read(dir + "/default.xml"), false).lossy());  // its <mac>
    CHECK(convert(read(dir + "/unmapped.xml"), false).lossy());
}

TEST_CASE("libvirt import: the documented note format", "[libvirt]")
{
    const Conversion c = convert("<network>\n<name>n</name>\n<ip address='10.2.0.1' prefix='24'/>\n<dns>\n"
                                 "  <srv service='x' protocol='tcp'/>\n</dns>\n<bridge stp='off'/>\n</network>\n",
                                 false);
    REQUIRE(c.ok());
    REQUIRE(c.notes.size() == 1);
    CHECK(kvmnet::libvirt::format_note("file.xml", c.notes[0]) ==
          "file.xml:5: <dns><srv>: kvmnet's SRV records need target and port (ignored)");
    CHECK(c.document["mode"] == "isolated");
}

TEST_CASE("libvirt import: addresses and masks", "[libvirt]")
{
    auto address = [](const std::string& attributes) {
        const Conversion c =
            convert("<network><name>m</name><bridge stp='off'/><ip " + attributes + "/></network>", false);
        return c.ok() ? c.document["ipv4"]["address"].get<std::string>() : "error: " + c.error;
    };
    CHECK(address("address='10.0.0.1' netmask='255.0.0.0'") == "10.0.0.1/8");
    CHECK(address("address='172.16.5.1' netmask='255.255.255.252'") == "172.16.5.1/30");
    CHECK(address("address='172.16.5.1' prefix='20'") == "172.16.5.1/20");
    // Without either, libvirt takes the address class.
    CHECK(address("address='10.9.0.1'") == "10.9.0.1/8");
    CHECK(address("address='172.16.0.1'") == "172.16.0.1/16");
    CHECK(address("address='192.168.9.1'") == "192.168.9.1/24");
    CHECK(address("address='192.168.9.1' netmask='255.0.255.0'") ==
          "error: <ip>: netmask='255.0.255.0' is not a contiguous netmask");
    CHECK(address("address='192.168.9.1' netmask='255.255.255.0' prefix='24'") ==
          "error: <ip>: give either netmask or prefix, not both");
    CHECK(address("address='192.168.9.1' prefix='x'") == "error: <ip>: prefix='x' is not a number");
    CHECK(address("address='192.168.9.300' prefix='24'")
              .starts_with("error: kvmnet refuses the converted document: ipv4.address:"));
}

TEST_CASE("libvirt import: files that are not libvirt networks", "[libvirt]")
{
    Conversion c = convert("<network>\n  <name>x</name>\n  <bridge name='a'\n</network>\n", false);
    CHECK_FALSE(c.ok());
    CHECK(c.error.starts_with("not valid XML: "));
    CHECK(c.error_line == 4);
    c = convert("<domain type='kvm'><name>vm</name></domain>", false);
    CHECK(c.error == "not a libvirt network: the root element is <domain>, not <network>");
    c = convert("<network><uuid>u</uuid></network>", false);
    CHECK(c.error == "<network>: <name> is required");
    c = convert("<network><name>n</name><forward mode='route'/><bridge stp='maybe'/></network>", false);
    CHECK(c.error == "<bridge>: stp='maybe' is neither 'on' nor 'off'");
}

TEST_CASE("libvirt import: lease time", "[libvirt]")
{
    auto lease = [](const std::string& attributes) {
        const Conversion c = convert("<network><name>l</name><bridge stp='off'/><ip address='10.3.0.1' "
                                     "prefix='24'><dhcp><range start='10.3.0.10' end='10.3.0.20'><lease " +
                                         attributes + "/></range></dhcp></ip></network>",
                                     false);
        return c.ok() ? c.document["ipv4"]["dhcp"]["lease_time"].dump() : "error: " + c.error;
    };
    CHECK(lease("expiry='1' unit='hours'") == "3600");
    CHECK(lease("expiry='60'") == "3600");  // minutes by default
    CHECK(lease("expiry='3600' unit='seconds'") == "3600");
    CHECK(lease("expiry='2' unit='hours'") == "7200");
    CHECK(lease("expiry='0'") == "\"infinite\"");
    CHECK(lease("expiry='60' unit='seconds'")
              .starts_with("error: kvmnet refuses the converted document: "
                           "ipv4.dhcp.lease_time:"));
}

}  // namespace unit_test_libvirt_import
