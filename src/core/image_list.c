/* The image list: borrowed pointers to U8 [H, W, C] images of different
 * sizes, so a batch can be cropped from each image's full resolution. The
 * list owns only its arrays; the pixels stay the caller's. */
#include <string.h>

#include "image_list.h"
#include "tensor.h"

#define MAX_SIDE ((int64_t)1 << 24)

simclr_status simclr_image_list_create(simclr_context *ctx, int64_t channels, simclr_image_list **out)
{
    static const char fn[] = "simclr_image_list_create";
    SIMCLR__CHECK_ARG(ctx, fn, "ctx is NULL");
    SIMCLR__CHECK_ARG(out, fn, "out is NULL");
    if (channels != 1 && channels != 3)
        return simclr__fail(SIMCLR_E_INVALID, "%s: channels %lld must be 1 or 3", fn, (long long)channels);
    simclr_image_list *l = simclr__calloc(ctx, 1, sizeof *l);
    if (!l) return simclr__nomem(fn, sizeof *l);
    l->ctx = ctx;
    l->channels = (int)channels; /* 1 or 3: checked above */
    *out = l;
    return SIMCLR_OK;
}

void simclr_image_list_destroy(simclr_image_list *list)
{
    if (!list) return;
    simclr__free(list->ctx, list->items);
    simclr__free(list->ctx, list);
}

simclr_status simclr_image_list_clear(simclr_image_list *list)
{
    SIMCLR__CHECK_ARG(list, "simclr_image_list_clear", "list is NULL");
    list->count = 0;
    return SIMCLR_OK;
}

/* Room for `need` items (capacity doubled from 64; the list is unchanged
 * on error). */
static simclr_status reserve_items(simclr_image_list *list, const char *fn, int64_t need)
{
    if (need <= list->cap) return SIMCLR_OK;
    int64_t cap = list->cap ? list->cap : 64;
    while (cap < need) cap *= 2;
    if ((uint64_t)cap > SIZE_MAX / sizeof(simclr__image))
        return simclr__fail(SIMCLR_E_SHAPE, "%s: %lld images do not fit in memory", fn, (long long)cap);
    simclr__image *items = simclr__malloc(list->ctx, (size_t)cap * sizeof *items);
    if (!items) return simclr__nomem(fn, (size_t)cap * sizeof *items);
    if (list->count) memcpy(items, list->items, (size_t)list->count * sizeof *items);
    simclr__free(list->ctx, list->items);
    list->items = items;
    list->cap = cap;
    return SIMCLR_OK;
}

simclr_status simclr_image_list_add(simclr_image_list *list, const uint8_t *pixels, int64_t height, int64_t width)
{
    static const char fn[] = "simclr_image_list_add";
    SIMCLR__CHECK_ARG(list, fn, "list is NULL");
    SIMCLR__CHECK_ARG(pixels, fn, "pixels is NULL");
    if (height < 1 || width < 1 || height > MAX_SIDE || width > MAX_SIDE)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: image %lld of %lld x %lld pixels: each side must be 1..%lld", fn,
                            (long long)list->count, (long long)height, (long long)width, (long long)MAX_SIDE);
    SIMCLR__TRY(reserve_items(list, fn, list->count + 1));
    list->items[list->count++] = (simclr__image){pixels, height, width};
    return SIMCLR_OK;
}

simclr_status simclr_image_list_add_tensor(simclr_image_list *list, const simclr_tensor *images)
{
    static const char fn[] = "simclr_image_list_add_tensor";
    SIMCLR__CHECK_ARG(list, fn, "list is NULL");
    SIMCLR__CHECK_ARG(images, fn, "images is NULL");
    SIMCLR__TRY(simclr__tensor_expect(images, fn, "images (U8 [N, H, W, C] of the list's channels)", SIMCLR_U8, 4,
                                      (const int64_t[]){-1, -1, -1, list->channels}));
    const int64_t n = images->dims[0], h = images->dims[1], w = images->dims[2];
    if (h > MAX_SIDE || w > MAX_SIDE)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: images of %lld x %lld pixels: each side must be 1..%lld", fn,
                            (long long)h, (long long)w, (long long)MAX_SIDE);
    if (n > INT64_MAX / 2 - list->count)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: %lld more images do not fit in a list", fn, (long long)n);
    SIMCLR__TRY(reserve_items(list, fn, list->count + n));
    const uint8_t *base = images->data;
    const size_t stride = (size_t)h * (size_t)w * (size_t)list->channels;
    for (int64_t i = 0; i < n; i++) list->items[list->count + i] = (simclr__image){base + (size_t)i * stride, h, w};
    list->count += n;
    return SIMCLR_OK;
}

int64_t simclr_image_list_count(const simclr_image_list *list) { return list ? list->count : 0; }

int64_t simclr_image_list_channels(const simclr_image_list *list) { return list ? list->channels : 0; }

simclr_status simclr_image_list_size(const simclr_image_list *list, int64_t index, int64_t *height, int64_t *width)
{
    static const char fn[] = "simclr_image_list_size";
    SIMCLR__CHECK_ARG(list, fn, "list is NULL");
    if (index < 0 || index >= list->count)
        return simclr__fail(SIMCLR_E_INVALID, "%s: index %lld out of range 0..%lld", fn, (long long)index,
                            (long long)list->count - 1);
    if (height) *height = list->items[index].h;
    if (width) *width = list->items[index].w;
    return SIMCLR_OK;
}

int64_t simclr__image_list_max_height(const simclr_image_list *list)
{
    int64_t m = 0;
    for (int64_t i = 0; i < list->count; i++)
        if (list->items[i].h > m) m = list->items[i].h;
    return m;
}
