/* Test scaffolding for Wine only, never shipped: Rust's std (1.78+) imports ProcessPrng from
 * bcryptprimitives.dll, a Windows 10 system DLL that Wine 8 does not have. This stands in for it,
 * filling the buffer from RtlGenRandom (advapi32's SystemFunction036), which Wine has. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk)) return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
