// Unit tests of plan::render for named sets and maps and the expressions
// that use them (lookups, dnat through a map, fib, ct status, limit, ct count
// meters): exact text, spelled as `nft list` spells it back, so the kernel
// check (tests/kernel/nft_adapter_check) can load it with nft -f.
#include "plan/ruleset.hpp"

#include <catch2/catch.hpp>

#include <string>

namespace unit_test_ruleset {

namespace plan = kvmnet::plan;
using plan::Field;
using plan::SetType;

namespace {

plan::Set set(std::string name, std::vector<SetType> key, std::vector<SetType> data = {})
{
    plan::Set s;
    s.name = std::move(name);
    s.key = std::move(key);
    s.data = std::move(data);
    return s;
}

plan::Rule rule(std::vector<plan::Match> matches, plan::Verdict verdict = plan::Verdict::none, bool counter = false,
                std::string comment = "")
{
    return plan::Rule{std::move(matches), counter, verdict, std::move(comment)};
}

// The text of the single rule of a one-chain table.
std::string rule_text(const plan::Rule& r)
{
    plan::Table t{"t", {plan::Chain{"c", "filter", "forward", 0, true, {r}}}};
    const std::string text = plan::render(t);
    const std::string head = "policy accept;\n\t\t";
    const auto start = text.find(head);
    REQUIRE(start != std::string::npos);
    const auto end = text.find('\n', start + head.size());
    return text.substr(start + head.size(), end - start - head.size());
}

}  // namespace

TEST_CASE("A table without sets renders as before", "[ruleset]")
{
    plan::Table t{"kvmnet", {plan::Chain{"c", "filter", "input", 0, false, {rule({}, plan::Verdict::accept)}}}};
    CHECK(plan::render(t) == "table inet kvmnet {\n"
                             "\tchain c {\n"
                             "\t\ttype filter hook input priority 0; policy drop;\n"
                             "\t\taccept\n"
                             "\t}\n"
                             "}\n");
}

TEST_CASE("Sets and maps render before the chains, as nft lists them", "[ruleset]")
{
    plan::Set fwd4 = set("fwd4", {SetType::ipv4_addr, SetType::inet_proto, SetType::inet_service},
                         {SetType::ipv4_addr, SetType::inet_service});
    fwd4.counter = true;
    fwd4.elements = {{{"192.0.2.10", "tcp", "8080"}, {"192.168.122.10", "80"}, "web"},
                     {{"192.0.2.10", "udp", "53"}, {"192.168.122.11", "5353"}, ""}};
    plan::Set meter = set("meter4", {SetType::ipv4_addr});
    meter.size = 65535;
    meter.dynamic = true;
    plan::Set bridges = set("bridges", {SetType::ifname});
    bridges.elements = {{{"kvmbr0"}, {}, ""}};
    plan::Set empty_map = set("fwd6", {SetType::ipv6_addr, SetType::inet_proto, SetType::inet_service},
                              {SetType::ipv6_addr, SetType::inet_service});
    plan::Set macs = set("macs", {SetType::ether_addr});
    macs.elements = {{{"52:54:00:12:34:56"}, {}, "guest"}};

    plan::Table t{
        "kvmnet", {plan::Chain{"c", "filter", "forward", 0, true, {}}}, {fwd4, meter, bridges, empty_map, macs}};
    CHECK(plan::render(t) == "table inet kvmnet {\n"
                             "\tmap fwd4 {\n"
                             "\t\ttype ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service\n"
                             "\t\tcounter\n"
                             "\t\telements = { 192.0.2.10 . tcp . 8080 comment \"web\" : 192.168.122.10 . 80,\n"
                             "\t\t\t     192.0.2.10 . udp . 53 : 192.168.122.11 . 5353 }\n"
                             "\t}\n"
                             "\n"
                             "\tset meter4 {\n"
                             "\t\ttype ipv4_addr\n"
                             "\t\tsize 65535\n"
                             "\t\tflags dynamic\n"
                             "\t}\n"
                             "\n"
                             "\tset bridges {\n"
                             "\t\ttype ifname\n"
                             "\t\telements = { \"kvmbr0\" }\n"
                             "\t}\n"
                             "\n"
                             "\tmap fwd6 {\n"
                             "\t\ttype ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service\n"
                             "\t}\n"
                             "\n"
                             "\tset macs {\n"
                             "\t\ttype ether_addr\n"
                             "\t\telements = { 52:54:00:12:34:56 comment \"guest\" }\n"
                             "\t}\n"
                             "\n"
                             "\tchain c {\n"
                             "\t\ttype filter hook forward priority 0; policy accept;\n"
                             "\t}\n"
                             "}\n");
}

TEST_CASE("Set lookups render as key concatenations", "[ruleset]")
{
    CHECK(rule_text(rule({plan::MatchSetLookup{{Field::ip_daddr, Field::meta_l4proto, Field::th_dport}, "fwd", false}},
                         plan::Verdict::accept)) == "ip daddr . meta l4proto . th dport @fwd accept");
    CHECK(rule_text(rule({plan::MatchIfname{true, plan::Cmp::eq, "kvmbr0"},
                          plan::MatchSetLookup{{Field::ip_saddr}, "guests4", true}},
                         plan::Verdict::drop, true)) == "iifname \"kvmbr0\" ip saddr != @guests4 counter drop");
    CHECK(rule_text(rule({plan::MatchSetLookup{{Field::iifname}, "bridges", false}})) == "iifname @bridges");
    CHECK(rule_text(rule({plan::MatchSetLookup{{Field::oifname, Field::ip6_saddr, Field::ip6_daddr}, "x", false}})) ==
          "oifname . ip6 saddr . ip6 daddr @x");
    CHECK(rule_text(rule({plan::MatchSetLookup{{Field::ether_saddr, Field::th_sport}, "m", false}})) ==
          "ether saddr . th sport @m");
}

TEST_CASE("dnat through a map goes after the counter and ends the rule", "[ruleset]")
{
    const plan::DnatMap dnat{false, {Field::ip_daddr, Field::meta_l4proto, Field::th_dport}, "fwd4"};
    CHECK(rule_text(rule({dnat}, plan::Verdict::none, true, "fwd")) ==
          "counter dnat ip to ip daddr . meta l4proto . th dport map @fwd4 comment \"fwd\"");
    // Wherever it stands among the conditions.
    CHECK(rule_text(rule(
              {plan::DnatMap{false, {Field::meta_l4proto, Field::th_dport}, "local"}, plan::MatchFibDaddrLocal{}})) ==
          "fib daddr type local dnat ip to meta l4proto . th dport map @local");
    CHECK(rule_text(rule({plan::DnatMap{true, {Field::ip6_daddr, Field::meta_l4proto, Field::th_dport}, "fwd6"}})) ==
          "dnat ip6 to ip6 daddr . meta l4proto . th dport map @fwd6");
}

TEST_CASE("fib, ct status, limit and ct count meters", "[ruleset]")
{
    CHECK(rule_text(rule({plan::MatchFibDaddrLocal{plan::Cmp::neq}}, plan::Verdict::drop)) ==
          "fib daddr type != local drop");
    CHECK(rule_text(rule({plan::MatchCtStatus{plan::ct_status::dnat}}, plan::Verdict::masquerade)) ==
          "ct status dnat masquerade");
    CHECK(rule_text(rule({plan::MatchCtStatus{plan::ct_status::snat | plan::ct_status::dnat |
                                              plan::ct_status::seen_reply}})) == "ct status seen-reply,snat,dnat");
    // nft leaves out its default burst of 5 packets.
    CHECK(rule_text(rule({plan::MatchCtState{plan::ct::new_}, plan::MatchLimit{200, 5, true}}, plan::Verdict::drop,
                         true)) == "ct state new limit rate over 200/second counter drop");
    CHECK(rule_text(rule({plan::MatchLimit{5, 10, false}}, plan::Verdict::accept)) ==
          "limit rate 5/second burst 10 packets accept");
    CHECK(rule_text(rule(
              {plan::MatchCtState{plan::ct::new_}, plan::MatchConnLimit{{Field::ip_saddr}, "meter4", 1024, true}},
              plan::Verdict::drop, true)) == "ct state new add @meter4 { ip saddr ct count over 1024 } counter drop");
    CHECK(rule_text(rule({plan::MatchConnLimit{{Field::ip6_saddr}, "meter6", 8, false}}, plan::Verdict::accept)) ==
          "add @meter6 { ip6 saddr ct count 8 } accept");
}

TEST_CASE("Field types match the set types lookups need", "[ruleset]")
{
    CHECK(plan::field_type(Field::ip_daddr) == SetType::ipv4_addr);
    CHECK(plan::field_type(Field::ip6_saddr) == SetType::ipv6_addr);
    CHECK(plan::field_type(Field::meta_l4proto) == SetType::inet_proto);
    CHECK(plan::field_type(Field::th_dport) == SetType::inet_service);
    CHECK(plan::field_type(Field::oifname) == SetType::ifname);
    CHECK(plan::field_type(Field::ether_saddr) == SetType::ether_addr);
}

}  // namespace unit_test_ruleset
