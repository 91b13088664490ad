// Cursor paging over lists that may change between two pages (forwards,
// leases, ports): every reply stays far below the bus's message limit, and
// a walk keeps its place when items before it are added or removed.
//
// A cursor is "INDEX:KEY": the index of the next item and the key (unique
// in the list) of the item before it. A walk resumes after the item with
// KEY wherever it is now; if that item is gone, at INDEX - 1 (the items
// after a removed one move down by one).
#pragma once

#include "model/error.hpp"

#include <nlohmann/json.hpp>

#include <charconv>
#include <cstdint>
#include <string>

namespace kvmnet::core {

// What one page may hold: at most this many items, and it ends early once
// its JSON passes max_page_bytes (it always holds at least one item).
inline constexpr std::uint32_t max_page_items = 4096;
inline constexpr std::size_t max_page_bytes = std::size_t{4} << 20;
// Every reply the daemon sends stays at or below this (org.kvmnet1.Error.TooLarge
// otherwise): a quarter of dbus-daemon's default max_message_size (32 MiB),
// which disconnects a sender of anything larger.
inline constexpr std::size_t max_reply_bytes = std::size_t{8} << 20;

struct Page {
    nlohmann::json items = nlohmann::json::array();
    std::string next;  // "" after the last page
};

inline void check_page_limit(std::uint32_t limit)
{
    if (limit == 0 || limit > max_page_items)
        throw invalid_field("limit", "must be between 1 and " + std::to_string(max_page_items));
}

// The index the page after `cursor` starts at; key_at(i) is item i's key.
template <typename KeyAt>
std::size_t page_start(const std::string& cursor, std::size_t size, const KeyAt& key_at)
{
    if (cursor.empty()) return 0;
    const auto colon = cursor.find(':');
    std::size_t index = 0;
    const char* end = cursor.data() + (colon == std::string::npos ? 0 : colon);
    const auto [ptr, ec] = std::from_chars(cursor.data(), end, index);
    if (colon == std::string::npos || ec != std::errc() || ptr != end || index == 0)
        throw invalid_field("cursor", "'" + cursor + "' is not a cursor this daemon handed out (start with \"\")");
    const std::string key = cursor.substr(colon + 1);
    if (index <= size && key_at(index - 1) == key) return index;
    for (std::size_t i = 0; i < size; ++i)
        if (key_at(i) == key) return i + 1;
    return std::min(index - 1, size);
}

// One page of a list of `size` items from `cursor`: item_at(i) is item i's
// JSON, key_at(i) its key.
template <typename KeyAt, typename ItemAt>
Page make_page(const std::string& cursor, std::uint32_t limit, std::size_t size, const KeyAt& key_at,
               const ItemAt& item_at)
{
    check_page_limit(limit);
    Page page;
    std::size_t i = page_start(cursor, size, key_at);
    std::size_t bytes = 0;
    for (; i < size && page.items.size() < limit && bytes < max_page_bytes; ++i) {
        nlohmann::json item = item_at(i);
        bytes += item.dump().size() + 1;
        page.items.push_back(std::move(item));
    }
    if (i < size) page.next = std::to_string(i) + ":" + key_at(i - 1);
    return page;
}

}  // namespace kvmnet::core
