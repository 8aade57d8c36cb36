#!/usr/bin/env bash
# Regenerates every sample audio file under audio/ from text of Kế hoạch 37/KH-UBND (22/3/2019),
# UBND thành phố Quảng Ngãi, "Tuyên truyền cải cách hành chính năm 2019".
# Needs: espeak-ng (Vietnamese voice `vi`), sox (with Ogg Vorbis support).
# Output: Ogg Vorbis, mono, 16 kHz, low bitrate; every file ~5-15 s; all of audio/ stays well under 5 MB.
set -euo pipefail
cd "$(dirname "$0")"
command -v espeak-ng >/dev/null || { echo "make-samples.sh: espeak-ng is missing (apt-get install espeak-ng)" >&2; exit 1; }
command -v sox >/dev/null || { echo "make-samples.sh: sox is missing (apt-get install sox)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# speak OUT.ogg "text": Vietnamese speech, normalised to -3 dBFS peak, mono 16 kHz Ogg Vorbis (q0).
speak() {
  espeak-ng -v vi -s 165 -w "$tmp/s.wav" "$2"
  sox "$tmp/s.wav" -r 16000 -c 1 -C 0 "$1" norm -3
}

# The twelve passages spoken by the monthly CCHC episodes (month m uses passage m), from sections
# I-III of the plan.
passages=(
  "Tuyên truyền nâng cao nhận thức trách nhiệm của cán bộ, công chức và người dân về ý nghĩa của công tác cải cách hành chính."
  "Nâng cao trách nhiệm của các cơ quan chức năng, đáp ứng ngày càng tốt hơn nhu cầu về dịch vụ hành chính công của tổ chức và công dân."
  "Tăng cường công tác lãnh đạo, chỉ đạo, điều hành của các cơ quan, đơn vị trong tổ chức thực hiện công tác cải cách hành chính."
  "Phát huy vai trò của các cơ quan truyền thông, báo chí trong việc phản ánh chính xác, kịp thời việc thực hiện nhiệm vụ cải cách hành chính."
  "Tổ chức và người dân hiểu và nắm bắt được quy trình tiếp nhận và giải quyết thủ tục hành chính."
  "Thực hiện cơ chế một cửa liên thông hiện đại từ xã đến thành phố; phấn đấu rút ngắn thời gian giải quyết tối thiểu ba mươi phần trăm."
  "Tăng cường tính công khai, minh bạch, trách nhiệm giải trình trong tổ chức và hoạt động của các cơ quan nhà nước."
  "Theo dõi, kiểm soát hoạt động tiếp nhận hồ sơ, trả kết quả tại Trung tâm hành chính công thành phố Quảng Ngãi."
  "Duy trì, cải tiến hệ thống quản lý chất lượng theo tiêu chuẩn quốc gia TCVN ISO 9001 tại các cơ quan, đơn vị."
  "Tuyên truyền các gương điển hình tiên tiến, các sáng kiến trong thực hiện cải cách hành chính; phê phán biểu hiện gây phiền hà, sách nhiễu."
  "Nâng cao trách nhiệm của người đứng đầu các cơ quan, đơn vị, địa phương; chú trọng đào tạo, bồi dưỡng cán bộ, công chức."
  "Nâng cao mức độ sử dụng các dịch vụ công trực tuyến mức độ ba, bốn trong giải quyết thủ tục hành chính cho tổ chức và công dân."
)

mkdir -p cchc notices
for year in 2019 2026 2027; do
  for m in $(seq 1 12); do
    mm=$(printf '%02d' "$m")
    speak "cchc/$year-$mm.ogg" "Chuyên mục cải cách hành chính, số tháng $m năm $year. ${passages[$((m - 1))]}"
  done
done

# Jingle: three rising tones (C5 E5 G5) then a chord, 2.5 s.
sox -n -r 16000 -c 1 "$tmp/t1.wav" synth 0.4 sine 523.25 fade 0.02 0.4 0.1
sox -n -r 16000 -c 1 "$tmp/t2.wav" synth 0.4 sine 659.25 fade 0.02 0.4 0.1
sox -n -r 16000 -c 1 "$tmp/t3.wav" synth 0.4 sine 783.99 fade 0.02 0.4 0.1
sox -n -r 16000 -c 1 "$tmp/t4.wav" synth 1.3 sine 523.25 sine 659.25 sine 783.99 fade 0.02 1.3 0.6
sox "$tmp/t1.wav" "$tmp/t2.wav" "$tmp/t3.wav" "$tmp/t4.wav" -C 0 jingle.ogg norm -3

speak ident-city.ogg "Đây là Đài Truyền thanh thành phố Quảng Ngãi, Trung tâm Truyền thông, Văn hóa, Thể thao thành phố Quảng Ngãi."
speak notices/le-hong-phong.ogg "Đài truyền thanh phường Lê Hồng Phong xin thông báo: Bộ phận một cửa của Ủy ban nhân dân phường tiếp nhận hồ sơ thủ tục hành chính vào các ngày làm việc trong tuần."
speak notices/tran-phu.ogg "Đài truyền thanh phường Trần Phú xin thông báo: công khai thủ tục hành chính tại trụ sở Ủy ban nhân dân phường và trên Cổng thông tin điện tử."
speak notices/nghia-dong.ogg "Đài truyền thanh xã Nghĩa Dõng xin thông báo: người dân có thể nộp hồ sơ thủ tục hành chính trực tuyến mức độ ba, bốn."
speak closing.ogg "Chương trình phát thanh đến đây là kết thúc. Cảm ơn quý vị và các bạn đã chú ý theo dõi."

du -sh . >&2
