// Designated initializers below name only the fields that matter and mean the
// defaults for the rest, which GCC's -Wextra reports for members without a
// default member initializer (std::string ones); that warning is noise here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#include "manager_harness.hpp"

namespace kvmnet::test {

LinkInfo physical(const std::string& name, const std::string& mac, std::uint32_t mtu)
{
    LinkInfo l;
    l.name = name;
    l.mac = model::Mac::parse(mac);
    l.mtu = mtu;
    l.up = true;
    l.carrier = true;
    return l;
}

void populate_host(FakeLinks& k)
{
    k.add_link(physical("lo", "00:00:00:00:00:00", 65536));
    k.add_link(physical("eth0", eth0_mac, 1500));
    k.add_link(physical("eth1", "52:54:00:aa:bb:02", 9000));
    LinkInfo wlan = physical("wlan0", "52:54:00:aa:bb:03", 1500);
    wlan.wireless = true;
    k.add_link(wlan);
    LinkInfo ext = physical("br-ext", "52:54:00:aa:bb:05", 1500);
    ext.kind = "bridge";
    const int ext_index = k.add_link(ext);
    LinkInfo eth2 = physical("eth2", "52:54:00:aa:bb:06", 1500);
    eth2.master_index = ext_index;
    k.add_link(eth2);

    k.add_address_info("lo", {.address = ip("127.0.0.1"), .prefix_length = 8, .scope = scope_host});
    k.add_address_info("lo", {.address = ip("::1"), .prefix_length = 128, .scope = scope_host});
    k.add_address_info("eth0", {.address = ip("192.168.1.10"),
                                .prefix_length = 24,
                                .broadcast = kvmnet::model::Ipv4::parse("192.168.1.255"),
                                .label = "eth0",
                                .valid_lifetime = 3600,
                                .preferred_lifetime = 3000});
    k.add_address_info("eth0", {.address = ip("192.168.1.11"),
                                .prefix_length = 24,
                                .broadcast = kvmnet::model::Ipv4::parse("192.168.1.255"),
                                .label = "eth0:web"});
    k.add_address_info("eth0", {.address = ip("2001:db8:1::10"),
                                .prefix_length = 64,
                                .flags = 0x100 /* IFA_F_MANAGETEMPADDR */,
                                .valid_lifetime = 86400,
                                .preferred_lifetime = 14400});
    k.add_address_info("eth0", {.address = ip("fe80::5054:ff:feaa:bb01"), .prefix_length = 64, .scope = scope_link});
    k.add_address_info("eth1", {.address = ip("172.16.0.5"),
                                .prefix_length = 24,
                                .broadcast = kvmnet::model::Ipv4::parse("172.16.0.255"),
                                .label = "eth1"});

    k.add_route("eth0", {.family = AF_INET,
                         .gateway = ip("192.168.1.1"),
                         .preferred_source = ip("192.168.1.10"),
                         .metric = 100,
                         .protocol = rtprot_dhcp});
    k.add_route("eth0", {.family = AF_INET,
                         .destination = ip("10.20.0.0"),
                         .prefix_length = 16,
                         .gateway = ip("192.168.1.254"),
                         .protocol = rtprot_static});
    k.add_route("eth0", {.family = AF_INET,
                         .destination = ip("192.0.2.0"),
                         .prefix_length = 24,
                         .gateway = ip("192.168.1.254"),
                         .preferred_source = ip("192.168.1.11"),
                         .metric = 5,
                         .protocol = rtprot_static});
    k.add_route("eth0", {.family = AF_INET, .gateway = ip("192.168.1.1"), .table = 100, .protocol = rtprot_static});
    k.add_route("eth0", {.family = AF_INET,
                         .destination = ip("198.51.100.0"),
                         .prefix_length = 24,
                         .gateway = ip("10.255.0.1"),
                         .protocol = rtprot_static,
                         .flags = rtnh_f_onlink});
    k.add_route("eth0", {.family = AF_INET,
                         .destination = ip("203.0.113.0"),
                         .prefix_length = 24,
                         .metric = 10,
                         .protocol = rtprot_boot,
                         .scope = scope_link});
    k.add_route("eth0", {.family = AF_INET6, .gateway = ip("fe80::1"), .metric = 1024, .protocol = rtprot_ra});
    k.add_route("eth0", {.family = AF_INET6,
                         .destination = ip("2001:db8:2::"),
                         .prefix_length = 64,
                         .gateway = ip("2001:db8:1::1"),
                         .metric = 1024,
                         .protocol = rtprot_static});
    k.add_route("eth1", {.family = AF_INET, .gateway = ip("172.16.0.1"), .metric = 600, .protocol = rtprot_dhcp});
    k.reset_calls();
}

std::string write_fake_dnsmasq(const std::string& dir)
{
    const std::string path = dir + "/fake-dnsmasq";
    std::ofstream(path) << "#!/bin/sh\n"
                           "dir=$(dirname \"${2#--conf-file=}\")\n"
                           "trap 'echo hup >>\"$dir/hups\"' HUP\n"
                           "echo $$ >\"$dir/dnsmasq.pid\"\n"
                           "while :; do sleep 0.02; done\n";
    fs::permissions(path, fs::perms::owner_all);
    return path;
}

std::string read_text(const std::string& path)
{
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

}  // namespace kvmnet::test
