// Test images for image_resize: `images make DIR` writes a.png (40x30 RGB),
// b.jpg (64x48 RGB), c.pgm (20x10 gray), bad.png (text) and notes.txt;
// `images size FILE` prints "W H CHANNELS" of an image.
#include <stb_image.h>
#include <stb_image_write.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace {

std::vector<unsigned char> pattern(int w, int h, int ch) {
  std::vector<unsigned char> px(static_cast<std::size_t>(w * h * ch));
  for (std::size_t i = 0; i < px.size(); ++i) px[i] = static_cast<unsigned char>((i * 37) % 251);
  return px;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "make") {
    const std::string d = argv[2];
    auto a = pattern(40, 30, 3), b = pattern(64, 48, 3), c = pattern(20, 10, 1);
    if (!stbi_write_png((d + "/a.png").c_str(), 40, 30, 3, a.data(), 40 * 3)) return 1;
    if (!stbi_write_jpg((d + "/b.jpg").c_str(), 64, 48, 3, b.data(), 90)) return 1;
    std::ofstream pgm(d + "/c.pgm", std::ios::binary);
    pgm << "P5\n20 10\n255\n";
    pgm.write(reinterpret_cast<const char*>(c.data()), static_cast<std::streamsize>(c.size()));
    std::ofstream(d + "/bad.png") << "this is not a PNG";
    std::ofstream(d + "/notes.txt") << "not an image name: skipped";
    return 0;
  }
  if (argc == 3 && std::string(argv[1]) == "size") {
    int w = 0, h = 0, ch = 0;
    if (!stbi_info(argv[2], &w, &h, &ch)) return 1;
    std::printf("%d %d %d\n", w, h, ch);
    return 0;
  }
  std::fprintf(stderr, "usage: images make DIR | images size FILE\n");
  return 2;
}
