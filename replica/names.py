"""Character tables and generators for entry names, subtitles and body text.

Everything here is our own invented vocabulary: the replica must look like an
encyclopedia (Chinese names, a few Latin ones, punctuation in odd places) but
never reproduce Baike's text. All generators take an explicit
``random.Random`` so that a seed fully determines the output.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from math import floor
from typing import TypeVar

# Characters a name may contain; anything else (quotes, `<`, `&`, `/`, `%`, `?`)
# would need HTML escaping or would break the `/item/<name>` path grammar.
SAFE_ASCII_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 +#.-")

# The word tables below stay packed, many words a line, not one a line as ruff format would have them.
# fmt: off
# 郭 is left out on purpose: the real sample entry 郭文景 must never collide
# with a generated person name.
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏"
    "魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛段雷侯龙史陶黎贺顾毛郝龚邵"
    "万钱严覃武戴莫孔向汤欧阳"
)
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏飞斌宇浩凯健俊帆帅旭宁琳欣婷雪"
    "晨思博志清海波峰岚松柏竹梅菊荷云霖雨露星辰月朗宏远致恒毅诚信仁义礼智德正然安乐康嘉佳瑞祥"
    "和顺泽润涵若雅颖慧聪睿哲儒彦鸿鹤翔腾骏驰"
)
PLACE_HEADS = (
    "安宁平阳江山河湖南北东西长新开远丰泰兴华德庆永昌盛福寿临清云溪石桥柳杨松竹梅桃花金银铜"
    "玉宝龙凤鹤鹿青白红黄紫朝晋汉唐明秦楚吴越蜀滇黔闽粤桂湘鄂赣皖浙苏鲁豫冀晋陕甘宁"
)
PLACE_SUFFIXES = ("县", "市", "镇", "乡", "村", "区", "山", "河", "湖", "岛", "湾", "峡", "关", "港", "站", "街道")
CONCEPT_HEADS = (
    "量子", "分布式", "线性", "离散", "有机", "无机", "古典", "现代", "结构", "功能", "比较", "应用",
    "理论", "计算", "数字", "生物", "分子", "地理", "环境", "信息", "网络", "能源", "材料", "社会",
    "文化", "历史", "经济", "金融", "临床", "农业", "海洋", "天体", "光学", "声学", "热力", "流体",
    "拓扑", "代数", "几何", "统计", "语义", "认知", "行为", "系统", "控制", "机械", "电子", "微观",
    "宏观", "区域", "城市", "民间", "传统", "公共", "国际", "基础", "高等", "实验", "工业", "空间",
)
CONCEPT_TAILS = (
    "学", "理论", "方法", "模型", "算法", "协议", "定律", "效应", "原理", "工程", "技术", "系统",
    "分析", "设计", "规划", "管理", "艺术", "文学", "语言", "哲学", "化学", "物理", "材料", "结构",
    "现象", "假说", "体系", "学派", "运动", "制度", "标准", "规范", "装置", "仪器", "器件", "平台",
)
ORGANISM_HEADS = "金银青白红黄紫黑花斑长短大小山野水海沙石竹松云雪"
ORGANISM_BODIES = "雀燕鹰鹤鱼虾蟹龟蛙蛇鹿羊兔鼠狐熊蜂蝶蛾蚁兰菊莲荷梅桃李杏柳杉柏藤草"
ORGANISM_SUFFIXES = ("属", "科", "种", "目", "亚种", "")
WORK_CHARS = "春夏秋冬风花雪月山河江湖天地日夜梦歌行记传说曲赋归来远近长短烟雨灯火城门故乡人间"
TRANSLIT = "阿巴贝布达德多恩法菲弗格哈赫杰卡凯克拉莱兰里林罗洛马麦米莫纳尼诺帕佩皮萨塞斯索塔泰特托瓦维沃西谢亚伊尤扎泽兹"
LATIN_HEADS = (
    "Aster", "Borel", "Cinder", "Delta", "Ember", "Fable", "Garnet", "Helix", "Iris", "Juno",
    "Kepler", "Lumen", "Mosaic", "Nimbus", "Orbit", "Pixel", "Quartz", "Raven", "Sable", "Tundra",
    "Umbra", "Vesper", "Willow", "Xenon", "Yarrow", "Zephyr", "Argo", "Basalt", "Corvid", "Dune",
)
LATIN_FIRST = (
    "Adrian", "Beatrix", "Casper", "Dorothea", "Edwin", "Freya", "Gustav", "Hilde", "Ivo", "Johanna",
    "Kees", "Liesel", "Maarten", "Nadia", "Otto", "Petra", "Ruud", "Saskia", "Tobias", "Ursula",
)
LATIN_PARTICLES = ("van", "de", "von", "van der", "da")
LATIN_LAST = (
    "Aalst", "Brink", "Castel", "Dijkstra", "Eck", "Falk", "Groot", "Hove", "Inge", "Jansen",
    "Kamp", "Lind", "Meer", "Noord", "Oever", "Pauw", "Rijn", "Smit", "Toorn", "Veld",
)
# Well-known shapes of Latin names (not real entries of ours, just the tricky
# characters): `+`, `#`, `.`, spaces.
LATIN_FIXED = ("C++", "C#", "Guido van Rossum", "Node.js", "A+B", "F#", "Objective-C", "Web 2.0")

ADJECTIVES = (
    "重要", "典型", "著名", "早期", "晚期", "主要", "独特", "传统", "新兴", "常见", "罕见", "复杂",
    "简单", "广泛", "基本", "核心", "经典", "特殊", "一般", "古老", "年轻", "稳定", "显著", "完整",
)
NOUNS = (
    "领域", "地区", "时期", "学科", "方向", "体系", "流派", "作品", "成果", "方法", "理论", "资料",
    "文献", "标本", "工具", "材料", "研究", "实践", "传统", "风格", "制度", "组织", "机构", "项目",
    "课题", "平台", "环境", "结构", "过程", "现象", "特征", "数据", "记录", "案例", "规律", "概念",
)
VERBS = (
    "提出", "发展", "整理", "记录", "研究", "推广", "改进", "总结", "完善", "建立", "发现", "描述",
    "证明", "设计", "组织", "参与", "编写", "出版", "主持", "支持", "介绍", "讨论", "比较", "解释",
)
PEOPLE_ROLES = (
    "作曲家", "画家", "诗人", "作家", "物理学家", "化学家", "数学家", "历史学家", "工程师", "建筑师",
    "演员", "导演", "运动员", "教师", "医生", "企业家", "外交官", "翻译家", "考古学家", "天文学家",
)
SUBTITLE_FORMS = (
    "{place}{role}", "{year}年出生的{role}", "{adj}{noun}", "{concept}术语", "{year}年{work}",
    "{place}地名", "{noun}名词", "{place}的{noun}", "{role}", "生物物种", "{concept}概念",
)
SECTION_TITLES = (
    "简介", "历史沿革", "主要特征", "发展历程", "基本原理", "研究现状", "相关人物", "地理环境",
    "经济发展", "社会影响", "代表作品", "获得荣誉", "人物经历", "形态特征", "分布范围", "应用领域",
    "文化传统", "主要成就", "评价", "争议", "参考标准", "技术参数", "组织结构", "名称由来",
)
INFOBOX_KEYS = (
    "外文名", "别名", "国籍", "民族", "出生地", "出生日期", "职业", "毕业院校", "主要成就", "代表作品",
    "所属类别", "类型", "地理位置", "面积", "人口", "气候条件", "发现时间", "提出者", "应用学科",
    "适用领域", "界", "门", "纲", "目", "科", "属", "分布区域", "出版时间", "作者", "语种", "所属地区",
    "成立时间", "总部地点", "学科", "性质", "简称", "创始人", "海拔", "邮政编码", "行政区类别",
)
# Keys whose value is usually another entry (rendered as an in-text link).
LINKED_KEYS = frozenset({"国籍", "出生地", "毕业院校", "代表作品", "所属类别", "地理位置", "提出者",
                         "应用学科", "所属地区", "总部地点", "学科", "创始人", "作者", "分布区域"})
COUNTRIES = ("中国", "日本", "法国", "德国", "意大利", "巴西", "加拿大", "埃及", "印度", "新西兰")
ETHNICITIES = ("汉族", "回族", "满族", "蒙古族", "藏族", "壮族", "苗族", "彝族")
LANGUAGES = ("中文", "英文", "法文", "日文", "德文")
# fmt: on


T = TypeVar("T")


def pick(rng: random.Random, seq: Sequence[T]) -> T:
    """One item of ``seq`` by one ``rng.random()`` draw (``rng.choice`` draws otherwise, and
    every generated page depends on the draws staying as they are)."""
    return seq[floor(rng.random() * len(seq))]


def person_name(rng: random.Random) -> str:
    given = pick(rng, GIVEN)
    if rng.random() < 0.7:
        given += pick(rng, GIVEN)
    return pick(rng, SURNAMES) + given


def place_name(rng: random.Random) -> str:
    head = pick(rng, PLACE_HEADS) + pick(rng, PLACE_HEADS)
    return head + pick(rng, PLACE_SUFFIXES)


def concept_name(rng: random.Random) -> str:
    return pick(rng, CONCEPT_HEADS) + pick(rng, CONCEPT_TAILS)


def organism_name(rng: random.Random) -> str:
    return (
        pick(rng, ORGANISM_HEADS)
        + pick(rng, ORGANISM_HEADS)
        + pick(rng, ORGANISM_BODIES)
        + pick(rng, ORGANISM_SUFFIXES)
    )


def work_name(rng: random.Random) -> str:
    length = 2 + floor(rng.random() * 3)
    return "".join(pick(rng, WORK_CHARS) for _ in range(length))


def foreign_person_name(rng: random.Random) -> str:
    first = "".join(pick(rng, TRANSLIT) for _ in range(2 + floor(rng.random() * 2)))
    last = "".join(pick(rng, TRANSLIT) for _ in range(2 + floor(rng.random() * 2)))
    return f"{first}·{last}"


def event_name(rng: random.Random) -> str:
    year = 1900 + floor(rng.random() * 125)
    return f"{year}年{place_name(rng)[:2]}{pick(rng, ('会议', '运动会', '博览会', '地震', '条约', '选举'))}"


def latin_name(rng: random.Random) -> str:
    roll = rng.random()
    head = pick(rng, LATIN_HEADS)
    if roll < 0.25:
        return f"{pick(rng, LATIN_FIRST)} {pick(rng, LATIN_PARTICLES)} {pick(rng, LATIN_LAST)}"
    if roll < 0.4:
        return head + "++"
    if roll < 0.5:
        return head + "#"
    if roll < 0.65:
        return f"{head}.{pick(rng, ('js', 'io', 'NET', 'py'))}"
    if roll < 0.8:
        return f"{head} {1 + floor(rng.random() * 20)}"
    if roll < 0.9:
        return f"{head}+{pick(rng, LATIN_HEADS)}"
    return pick(rng, CONCEPT_HEADS) + head


_KINDS = (
    (0.30, person_name),
    (0.48, place_name),
    (0.64, concept_name),
    (0.72, organism_name),
    (0.82, work_name),
    (0.88, foreign_person_name),
    (0.91, event_name),
)


def entry_name(rng: random.Random) -> str:
    """Return a random entry name: mostly Chinese, about 9% Latin or mixed."""
    roll = rng.random()
    for threshold, make in _KINDS:
        if roll < threshold:
            return make(rng)
    return latin_name(rng)


def missing_name(rng: random.Random) -> str:
    """A plausible person name, with more given characters than any generated one.

    It may still coincide with another kind of entry name, so links built from it
    are resolved like any other link.
    """
    return pick(rng, SURNAMES) + pick(rng, GIVEN) + pick(rng, GIVEN) + pick(rng, GIVEN)


def subtitle(rng: random.Random) -> str:
    form = pick(rng, SUBTITLE_FORMS)
    return form.format(
        place=place_name(rng)[:2],
        role=pick(rng, PEOPLE_ROLES),
        year=1900 + floor(rng.random() * 125),
        adj=pick(rng, ADJECTIVES),
        noun=pick(rng, NOUNS),
        concept=pick(rng, CONCEPT_HEADS),
        work=pick(rng, ("电影", "小说", "歌曲", "专辑", "电视剧", "游戏")),
    )


# Sentence shapes. `{L}` marks where an in-text entry link goes; the others are
# filled once when the sentence pool is built.
_SENTENCES = (
    "该{noun}在{year}年前后得到{adj}的{noun2}。",
    "其{noun}与{L}有密切联系，常被一同{verb}。",
    "学者们认为它是{adj}{noun}中最具代表性的一例。",
    "据{year}年的资料记载，这一{noun}已有较长的历史。",
    "后来{L}对其{noun}作了进一步{verb}。",
    "在{L}的影响下，相关{noun}逐渐形成{adj}的{noun2}。",
    "它的{noun}约为{num}，在同类{noun2}中较为{adj2}。",
    "{year}年，有关机构开始系统地{verb}这一{noun}。",
    "此后的{num}年间，{noun}的规模不断扩大。",
    "许多{noun}都参考了{L}的做法。",
    "与{L}相比，它在{noun}方面更加{adj2}。",
    "这一{noun}的{noun2}主要来自{L}。",
    "人们通常把它归入{adj}{noun}一类。",
    "关于它的{noun}，目前仍有不同的看法。",
    "其中最{adj2}的是{L}。",
    "相关内容可参见{L}。",
    "由于{noun}的变化，{noun2}也随之调整。",
    "当地保存有大量与{L}有关的{noun}。",
    "{year}年出版的资料对此有{adj}的介绍。",
    "它共包括{num}个主要部分。",
    "{L}与它同属{adj}{noun}。",
    "{year}年，{L}首次{verb}了这一{noun}。",
    "这一说法后来得到{L}的{verb}。",
    "详见{L}一节的介绍。",
    "它常与{L}一起被{verb}。",
    "{L}是其中最{adj2}的例子。",
)
_ADJ2 = ("突出", "完善", "稳定", "复杂", "简洁", "普遍", "灵活", "丰富")

Sentence = tuple[str, str | None]


def sentence_pool(rng: random.Random, size: int) -> list[Sentence]:
    """Build ``size`` sentences; each is ``(text, None)`` or ``(before, after)`` around a link."""
    pool: list[Sentence] = []
    for _ in range(size):
        shape = pick(rng, _SENTENCES)
        text = shape.format(
            noun=pick(rng, NOUNS),
            noun2=pick(rng, NOUNS),
            adj=pick(rng, ADJECTIVES),
            adj2=pick(rng, _ADJ2),
            verb=pick(rng, VERBS),
            year=1800 + floor(rng.random() * 225),
            num=2 + floor(rng.random() * 500),
            L="\x00",
        )
        if "\x00" in text:
            before, after = text.split("\x00")
            pool.append((before, after))
        else:
            pool.append((text, None))
    return pool
