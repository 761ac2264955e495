#include "cpu_cache.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace pruneofa {
namespace {

// "48K", "1024K", "2M" or plain bytes; 0 when malformed or out of (0, 1 GiB].
int64_t parse_size(const char* text) {
    char* end = nullptr;
    const long long value = std::strtoll(text, &end, 10);
    if (end == text || value <= 0) return 0;
    int64_t bytes = value;
    if (*end == 'K' || *end == 'k') {
        bytes *= 1024;
        ++end;
    } else if (*end == 'M' || *end == 'm') {
        bytes *= 1024 * 1024;
        ++end;
    }
    while (*end == ' ' || *end == '\n') ++end;
    if (*end != '\0' && *end != ',') return 0;
    return bytes <= (int64_t(1) << 30) ? bytes : 0;
}

bool from_env(CacheSizes* out) {
    const char* env = std::getenv("PRUNEOFA_KERNELS_CACHE_SIZES");
    if (env == nullptr || *env == '\0') return false;
    const char* comma = std::strchr(env, ',');
    if (comma == nullptr) return false;
    const int64_t l1d = parse_size(env), l2 = parse_size(comma + 1);
    if (l1d == 0 || l2 == 0) return false;
    *out = {l1d, l2, "PRUNEOFA_KERNELS_CACHE_SIZES"};
    return true;
}

std::string read_line(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "r");
    if (f == nullptr) return {};
    char buf[64] = {};
    const bool ok = std::fgets(buf, sizeof(buf), f) != nullptr;
    std::fclose(f);
    if (!ok) return {};
    std::string line(buf);
    while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
    return line;
}

bool from_sysfs(CacheSizes* out) {
    CacheSizes found{0, 0, "sysfs"};
    for (int i = 0; i < 16; ++i) {
        const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
        const std::string level = read_line(dir + "level");
        if (level.empty()) break;
        const std::string type = read_line(dir + "type");
        const int64_t size = parse_size(read_line(dir + "size").c_str());
        if (level == "1" && type == "Data") found.l1d = size;
        if (level == "2" && (type == "Unified" || type == "Data")) found.l2 = size;
    }
    if (found.l1d == 0 || found.l2 == 0) return false;
    *out = found;
    return true;
}

bool from_sysconf(CacheSizes* out) {
#if defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE)
    const long l1d = sysconf(_SC_LEVEL1_DCACHE_SIZE), l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    if (l1d <= 0 || l2 <= 0) return false;
    *out = {l1d, l2, "sysconf"};
    return true;
#else
    (void)out;
    return false;
#endif
}

}  // namespace

CacheSizes detect_cache_sizes() {
    CacheSizes sizes;
    if (from_env(&sizes) || from_sysfs(&sizes) || from_sysconf(&sizes)) return sizes;
    return CacheSizes{};
}

const CacheSizes& cache_sizes() {
    static const CacheSizes sizes = detect_cache_sizes();
    return sizes;
}

}  // namespace pruneofa
