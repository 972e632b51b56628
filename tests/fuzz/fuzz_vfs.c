/* Fuzzes path lookup, page-cache reads and directory lists (memsrv/vfs.h) on the synthetic
 * kernel of tests/support/vfsimage.h, patched by the input: its dentries,
 * mounts, inodes, xarray nodes and struct pages become whatever the input
 * says, the path looked up is one of a few (or the input's own).
 *
 * Input: u8 path selector (< 8: a path of the list; else the input's tail
 *        after the patches, up to 300 bytes, as the path), u8 npatches,
 *        then npatches x (u16 offset into kernel memory, u8 value); the
 *        read's offset is the u16 after them. A directory is listed, a
 *        file read. Every call must end without a crash; a successful read
 *        must say no more than the file's size. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../support/vfsimage.h"

static const char *const paths[] = {"/lab/file", "/link", "/abs", "/mnt/f2",
                                    "/loop",     "/neg",  "/",    "/mnt/../lab/./file"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct vimage img;
    static uint8_t pristine[VI_KSIZE], buf[3 * 4096];
    static struct ms_file_chunk chunk;
    static bool built;
    if (size < 2)
        return 0;
    if (!built) {
        vi_build(&img);
        memcpy(pristine, img.k, sizeof(pristine));
        built = true;
    }
    memcpy(img.k, pristine, sizeof(pristine)); /* patches only touch kernel memory */
    size_t pos = 2;
    for (unsigned i = 0; i < data[1] && pos + 3 <= size; i++, pos += 3) {
        uint16_t off = (uint16_t)(data[pos] | data[pos + 1] << 8);
        img.k[off % VI_KSIZE] = data[pos + 2];
    }
    uint16_t offset = 0;
    if (pos + 2 <= size) {
        offset = (uint16_t)(data[pos] | data[pos + 1] << 8);
        pos += 2;
    }
    char path[301];
    if (data[0] < 8) {
        strcpy(path, paths[data[0]]);
    } else {
        size_t n = size - pos < 300 ? size - pos : 300;
        memcpy(path, data + pos, n);
        path[n] = '\0';
    }
    struct ms_vfs v;
    struct ms_vfs_file f;
    struct ms_err err;
    vi_vfs(&img, &v);
    v.steps = 4096; /* a few times what the image needs: loops end fast */
    if (ms_vfs_lookup(&v, path, &f, &err) < 0)
        return 0;
    if ((f.mode & MS_S_IFMT) == MS_S_IFDIR) {
        struct ms_dir dir;
        ms_vfs_list(&v, &f, &dir, &err);
        for (size_t i = 0; i < dir.count; i++)
            if (!dir.entries[i].name[0] || strlen(dir.entries[i].name) > MS_VFS_NAME_MAX)
                abort();
        ms_dir_free(&dir);
    } else if (ms_vfs_read(&v, &f, offset % 8192, buf, sizeof(buf), &chunk, &err) == 0) {
        if (chunk.len > sizeof(buf) || chunk.len > chunk.size || chunk.nholes > MS_FILE_HOLES_MAX)
            abort();
        for (unsigned i = 0; i < chunk.nholes; i++)
            if (chunk.holes[i].offset < offset % 8192 ||
                chunk.holes[i].offset + chunk.holes[i].len > offset % 8192 + chunk.len)
                abort();
    }
    return 0;
}
