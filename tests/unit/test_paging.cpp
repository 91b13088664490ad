// core/paging.hpp: cursors that keep their place in a list that changes
// between pages.
#include "core/paging.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace unit_test_paging {

using kvmnet::core::make_page;
using kvmnet::core::Page;

namespace {

Page page(const std::vector<std::string>& list, const std::string& cursor, std::uint32_t limit)
{
    return make_page(
        cursor, limit, list.size(), [&](std::size_t i) { return list[i]; },
        [&](std::size_t i) { return nlohmann::json(list[i]); });
}

std::vector<std::string> items(const Page& p) { return p.items.get<std::vector<std::string>>(); }

}  // namespace

TEST_CASE("a walk visits every item once, limit at a time")
{
    const std::vector<std::string> list{"a", "b", "c", "d", "e"};
    std::vector<std::string> seen;
    std::string cursor;
    do {
        const Page p = page(list, cursor, 2);
        CHECK(p.items.size() <= 2);
        for (const auto& item : items(p))
            seen.push_back(item);
        cursor = p.next;
    } while (!cursor.empty());
    CHECK(seen == list);
}

TEST_CASE("a walk resumes after its last item when items before it are removed or added")
{
    std::vector<std::string> list{"a", "b", "c", "d", "e"};
    const Page first = page(list, "", 2);  // a, b
    list.erase(list.begin());              // a removed
    CHECK(items(page(list, first.next, 2)) == std::vector<std::string>{"c", "d"});
    list.insert(list.begin(), {"x", "y"});  // added before the cursor
    CHECK(items(page(list, first.next, 2)) == std::vector<std::string>{"c", "d"});
}

TEST_CASE("a walk whose last item was removed continues where it stood")
{
    std::vector<std::string> list{"a", "b", "c", "d"};
    const Page first = page(list, "", 2);  // a, b
    list.erase(list.begin() + 1);          // b removed
    CHECK(items(page(list, first.next, 2)) == std::vector<std::string>{"c", "d"});
    CHECK(page(std::vector<std::string>{}, first.next, 2).items.empty());
}

TEST_CASE("bad cursors and limits are InvalidArgument")
{
    const std::vector<std::string> list{"a"};
    for (const std::string cursor : {"x", "0:a", ":a", "1a:b", "-1:a"})
        CHECK_THROWS_AS(page(list, cursor, 1), kvmnet::Error);
    CHECK_THROWS_AS(page(list, "", 0), kvmnet::Error);
    CHECK_THROWS_AS(page(list, "", kvmnet::core::max_page_items + 1), kvmnet::Error);
    CHECK(page(list, "", 1).next.empty());
}

TEST_CASE("a page ends early past max_page_bytes")
{
    const std::vector<std::string> list(4, std::string(kvmnet::core::max_page_bytes / 2, 'x'));
    const Page p = page(list, "", 4);
    CHECK(p.items.size() == 2);
    CHECK(!p.next.empty());
}

}  // namespace unit_test_paging
