/*
 * core_api.h: the C ABI between the loader (plugin/loader.cpp, built as Contents/<arch>/Deflicker.ofx,
 * what the host loads) and the core (deflicker_core.so|.dylib|.dll beside it: the plugin, the
 * bridge and the embedded Python). The core exports only these three functions; their signatures
 * are those of the OFX entry points the loader forwards to them.
 */
#ifndef DEFLICKER_CORE_API_H
#define DEFLICKER_CORE_API_H

#include "ofx/ofx_api.h"

#if defined(_WIN32)
#define DfkCoreExport extern __declspec(dllexport)
#elif defined(__GNUC__)
#define DfkCoreExport extern __attribute__((visibility("default")))
#else
#define DfkCoreExport extern
#endif

#define DFK_CORE_SET_HOST "dfk_core_set_host"                            /* OfxSetHostFn */
#define DFK_CORE_GET_NUMBER_OF_PLUGINS "dfk_core_get_number_of_plugins"  /* OfxGetNumberOfPluginsFn */
#define DFK_CORE_GET_PLUGIN "dfk_core_get_plugin"                        /* OfxGetPluginFn */

#ifdef __cplusplus
extern "C" {
#endif

DfkCoreExport OfxStatus dfk_core_set_host(const OfxHost *host);
DfkCoreExport int dfk_core_get_number_of_plugins(void);
DfkCoreExport OfxPlugin *dfk_core_get_plugin(int nth);

#ifdef __cplusplus
}
#endif

#endif /* DEFLICKER_CORE_API_H */
