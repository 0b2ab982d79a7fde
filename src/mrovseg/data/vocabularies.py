"""Class-name vocabularies of the benchmarks and the prompt-template sets.

These lists are dataset facts, carried over as data from the public metadata of the datasets
(the registries of SAN / detectron2 / MaskFormer and the Cityscapes scripts); the source of each
list is cited beside it. Labels on disk index these lists: label value ``i`` is ``LIST[i]``.

A class name may carry comma-separated synonyms (``"sofa, couch, lounge"``), as in the SAN and
detectron2 metadata; :func:`split_synonyms` splits them. The text side averages the prompt
embeddings over the templates (and synonyms) of a class.
"""

from __future__ import annotations

__all__ = [
    "ADE_150",
    "ADE_847",
    "CITYSCAPES_19",
    "COCO_STUFF_171",
    "IMAGENET_TEMPLATES",
    "PC_59",
    "PC_459",
    "TEMPLATES",
    "VILD_TEMPLATES",
    "VOCABULARIES",
    "VOC_20",
    "get_templates",
    "get_vocabulary",
    "split_synonyms",
]

# fmt: off

#: COCO-Stuff-164k, 171 classes (80 things + 91 stuff) in contiguous-id order.
#: Source: https://github.com/MendelXu/SAN/blob/main/san/data/datasets/register_coco_stuff_164k.py
#: (``COCO_CATEGORIES[*]["name"]``, identical to detectron2's ``COCO_CATEGORIES`` + COCO-Stuff stuff names).
COCO_STUFF_171: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase",
    "scissors", "teddy bear", "hair drier", "toothbrush", "banner", "blanket", "branch", "bridge",
    "building-other", "bush", "cabinet", "cage", "cardboard", "carpet", "ceiling-other", "ceiling-tile",
    "cloth", "clothes", "clouds", "counter", "cupboard", "curtain", "desk-stuff", "dirt", "door-stuff",
    "fence", "floor-marble", "floor-other", "floor-stone", "floor-tile", "floor-wood", "flower", "fog",
    "food-other", "fruit", "furniture-other", "grass", "gravel", "ground-other", "hill", "house", "leaves",
    "light", "mat", "metal", "mirror-stuff", "moss", "mountain", "mud", "napkin", "net", "paper", "pavement",
    "pillow", "plant-other", "plastic", "platform", "playingfield", "railing", "railroad", "river", "road",
    "rock", "roof", "rug", "salad", "sand", "sea", "shelf", "sky-other", "skyscraper", "snow", "solid-other",
    "stairs", "stone", "straw", "structural-other", "table", "tent", "textile-other", "towel", "tree",
    "vegetable", "wall-brick", "wall-concrete", "wall-other", "wall-panel", "wall-stone", "wall-tile",
    "wall-wood", "water-other", "waterdrops", "window-blind", "window-other", "wood",
)

#: ADE20K-150 (SceneParsing / ADEChallengeData2016), label value = official id - 1.
#: Source: https://github.com/facebookresearch/detectron2/blob/main/detectron2/data/datasets/builtin_meta.py
#: (``ADE20K_SEM_SEG_CATEGORIES``, the list SAN evaluates with; ``"window "`` stripped of its trailing
#: space, as SAN's ``get_labelset_from_dataset`` does).
ADE_150: tuple[str, ...] = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road, route", "bed", "window", "grass",
    "cabinet", "sidewalk, pavement", "person", "earth, ground", "door", "table", "mountain, mount", "plant",
    "curtain", "chair", "car", "water", "painting, picture", "sofa", "shelf", "house", "sea", "mirror",
    "rug", "field", "armchair", "seat", "fence", "desk", "rock, stone", "wardrobe, closet, press", "lamp",
    "tub", "rail", "cushion", "base, pedestal, stand", "box", "column, pillar", "signboard, sign",
    "chest of drawers, chest, bureau, dresser", "counter", "sand", "sink", "skyscraper", "fireplace",
    "refrigerator, icebox", "grandstand, covered stand", "path", "stairs", "runway",
    "case, display case, showcase, vitrine", "pool table, billiard table, snooker table", "pillow",
    "screen door, screen", "stairway, staircase", "river", "bridge, span", "bookcase", "blind, screen",
    "coffee table", "toilet, can, commode, crapper, pot, potty, stool, throne", "flower", "book", "hill",
    "bench", "countertop", "stove", "palm, palm tree", "kitchen island", "computer", "swivel chair", "boat",
    "bar", "arcade machine", "hovel, hut, hutch, shack, shanty", "bus", "towel", "light", "truck", "tower",
    "chandelier", "awning, sunshade, sunblind", "street lamp", "booth", "tv", "plane", "dirt track",
    "clothes", "pole", "land, ground, soil", "bannister, banister, balustrade, balusters, handrail",
    "escalator, moving staircase, moving stairway", "ottoman, pouf, pouffe, puff, hassock", "bottle",
    "buffet, counter, sideboard", "poster, posting, placard, notice, bill, card", "stage", "van", "ship",
    "fountain", "conveyer belt, conveyor belt, conveyer, conveyor, transporter", "canopy",
    "washer, automatic washer, washing machine", "plaything, toy", "pool", "stool", "barrel, cask",
    "basket, handbasket", "falls", "tent", "bag", "minibike, motorbike", "cradle", "oven", "ball",
    "food, solid food", "step, stair", "tank, storage tank", "trade name", "microwave", "pot", "animal",
    "bicycle", "lake", "dishwasher", "screen", "blanket, cover", "sculpture", "hood, exhaust hood", "sconce",
    "vase", "traffic light", "tray", "trash can", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass, drinking glass", "clock", "flag",
)

#: ADE20K-full (ADE20K_2021_17_01), 847 classes, in train-id order.
#: Source: https://github.com/MendelXu/SAN/blob/main/san/data/datasets/register_ade20k_full.py
#: (``ADE20K_SEM_SEG_FULL_CATEGORIES[*]["name"]``, from MaskFormer's ``prepare_ade20k_sem_seg_full.py``;
#: the dataset ids live in :mod:`mrovseg.data.prepare.ade`).
ADE_847: tuple[str, ...] = (
    "wall", "building, edifice", "sky", "tree", "road, route", "floor, flooring", "ceiling", "bed",
    "sidewalk, pavement", "earth, ground", "cabinet", "person, individual, someone, somebody, mortal, soul",
    "grass", "windowpane, window", "car, auto, automobile, machine, motorcar", "mountain, mount",
    "plant, flora, plant life", "table", "chair", "curtain, drape, drapery, mantle, pall", "door",
    "sofa, couch, lounge", "sea", "painting, picture", "water", "mirror", "house", "rug, carpet, carpeting",
    "shelf", "armchair", "fence, fencing", "field", "lamp", "rock, stone", "seat", "river", "desk",
    "bathtub, bathing tub, bath, tub", "railing, rail", "signboard, sign", "cushion", "path", "work surface",
    "stairs, steps", "column, pillar", "sink", "wardrobe, closet, press", "snow", "refrigerator, icebox",
    "base, pedestal, stand", "bridge, span", "blind, screen", "runway", "cliff, drop, drop-off", "sand",
    "fireplace, hearth, open fireplace", "pillow", "screen door, screen",
    "toilet, can, commode, crapper, pot, potty, stool, throne", "skyscraper", "grandstand, covered stand",
    "box", "pool table, billiard table, snooker table", "palm, palm tree", "double door",
    "coffee table, cocktail table", "counter", "countertop", "chest of drawers, chest, bureau, dresser",
    "kitchen island", "boat", "waterfall, falls",
    "stove, kitchen stove, range, kitchen range, cooking stove", "flower", "bookcase", "controls", "book",
    "stairway, staircase", "streetlight, street lamp",
    "computer, computing machine, computing device, data processor, electronic computer, information processing system",
    "bus, autobus, coach, charabanc, double-decker, jitney, motorbus, motorcoach, omnibus, passenger vehicle",
    "swivel chair", "light, light source", "bench", "case, display case, showcase, vitrine", "towel",
    "fountain", "embankment",
    "television receiver, television, television set, tv, tv set, idiot box, boob tube, telly, goggle box",
    "van", "hill", "awning, sunshade, sunblind", "poster, posting, placard, notice, bill, card",
    "truck, motortruck", "airplane, aeroplane, plane", "pole", "tower", "court", "ball",
    "aircraft carrier, carrier, flattop, attack aircraft carrier", "buffet, counter, sideboard",
    "hovel, hut, hutch, shack, shanty", "apparel, wearing apparel, dress, clothes", "minibike, motorbike",
    "animal, animate being, beast, brute, creature, fauna", "chandelier, pendant, pendent", "step, stair",
    "booth, cubicle, stall, kiosk", "bicycle, bike, wheel, cycle", "doorframe, doorcase", "sconce", "pond",
    "trade name, brand name, brand, marque", "bannister, banister, balustrade, balusters, handrail", "bag",
    "traffic light, traffic signal, stoplight", "gazebo", "escalator, moving staircase, moving stairway",
    "land, ground, soil", "board, plank", "arcade machine", "eiderdown, duvet, continental quilt", "bar",
    "stall, stand, sales booth", "playground", "ship", "ottoman, pouf, pouffe, puff, hassock",
    "ashcan, trash can, garbage can, wastebin, ash bin, ash-bin, ashbin, dustbin, trash barrel, trash bin",
    "bottle", "cradle", "pot, flowerpot", "conveyer belt, conveyor belt, conveyer, conveyor, transporter",
    "train, railroad train", "stool", "lake", "tank, storage tank", "ice, water ice", "basket, handbasket",
    "manhole", "tent, collapsible shelter", "canopy", "microwave, microwave oven", "barrel, cask",
    "dirt track", "beam", "dishwasher, dish washer, dishwashing machine", "plate", "screen, crt screen",
    "ruins", "washer, automatic washer, washing machine", "blanket, cover", "plaything, toy",
    "food, solid food", "screen, silver screen, projection screen", "oven", "stage",
    "beacon, lighthouse, beacon light, pharos", "umbrella", "sculpture", "aqueduct", "container",
    "scaffolding, staging", "hood, exhaust hood", "curb, curbing, kerb", "roller coaster",
    "horse, equus caballus", "catwalk", "glass, drinking glass", "vase", "central reservation", "carousel",
    "radiator", "closet", "machine", "pier, wharf, wharfage, dock", "fan", "inflatable bounce game", "pitch",
    "paper", "arcade, colonnade", "hot tub", "helicopter", "tray", "partition, divider", "vineyard", "bowl",
    "bullring", "flag", "pot", "footbridge, overcrossing, pedestrian bridge", "shower",
    "bag, traveling bag, travelling bag, grip, suitcase", "bulletin board, notice board",
    "confessional booth", "trunk, tree trunk, bole", "forest", "elevator door", "laptop, laptop computer",
    "instrument panel", "bucket, pail", "tapestry, tapis", "platform", "jacket", "gate",
    "monitor, monitoring device", "telephone booth, phone booth, call box, telephone box, telephone kiosk",
    "spotlight, spot", "ring", "control panel", "blackboard, chalkboard",
    "air conditioner, air conditioning", "chest", "clock", "sand dune", "pipe, pipage, piping", "vault",
    "table football", "cannon", "swimming pool, swimming bath, natatorium",
    "fluorescent, fluorescent fixture", "statue",
    "loudspeaker, speaker, speaker unit, loudspeaker system, speaker system", "exhibitor", "ladder",
    "carport", "dam", "pulpit", "skylight, fanlight", "water tower", "grill, grille, grillwork",
    "display board", "pane, pane of glass, window glass", "rubbish, trash, scrap", "ice rink", "fruit",
    "patio", "vending machine", "telephone, phone, telephone set", "net",
    "backpack, back pack, knapsack, packsack, rucksack, haversack", "jar", "track", "magazine", "shutter",
    "roof", "banner, streamer", "landfill", "post", "altarpiece, reredos", "hat, chapeau, lid",
    "arch, archway", "table game", "bag, handbag, pocketbook, purse", "document, written document, papers",
    "dome", "pier", "shanties", "forecourt", "crane", "dog, domestic dog, canis familiaris",
    "piano, pianoforte, forte-piano", "drawing", "cabin",
    "ad, advertisement, advertizement, advertising, advertizing, advert",
    "amphitheater, amphitheatre, coliseum", "monument", "henhouse", "cockpit", "heater, warmer",
    "windmill, aerogenerator, wind generator", "pool", "elevator, lift",
    "decoration, ornament, ornamentation", "labyrinth", "text, textual matter", "printer",
    "mezzanine, first balcony", "mattress", "straw", "stalls", "patio, terrace", "billboard, hoarding",
    "bus stop", "trouser, pant", "console table, console", "rack", "notebook", "shrine", "pantry", "cart",
    "steam shovel", "porch", "postbox, mailbox, letter box", "figurine, statuette", "recycling bin",
    "folding screen", "telescope", "deck chair, beach chair", "kennel", "coffee maker",
    "altar, communion table, lord's table", "fish", "easel", "artificial golf green", "iceberg",
    "candlestick, candle holder", "shower stall, shower bath", "television stand",
    "wall socket, wall plug, electric outlet, electrical outlet, outlet, electric receptacle", "skeleton",
    "grand piano, grand", "candy, confect", "grille door", "pedestal, plinth, footstall",
    "jersey, t-shirt, tee shirt", "shoe", "gravestone, headstone, tombstone", "shanty", "structure",
    "rocking chair, rocker", "bird", "place mat", "tomb", "big top",
    "gas pump, gasoline pump, petrol pump, island dispenser", "lockers", "cage", "finger", "bleachers",
    "ferris wheel", "hairdresser chair", "mat", "stands", "aquarium, fish tank, marine museum",
    "streetcar, tram, tramcar, trolley, trolley car", "napkin, table napkin, serviette", "dummy",
    "booklet, brochure, folder, leaflet, pamphlet", "sand trap", "shop, store", "table cloth",
    "service station", "coffin", "drawer", "cages", "slot machine, coin machine", "balcony",
    "volleyball court", "table tennis", "control table", "shirt", "merchandise, ware, product", "railway",
    "parterre", "chimney", "can, tin, tin can", "tanks", "fabric, cloth, material, textile", "alga, algae",
    "system", "map", "greenhouse", "mug", "barbecue", "trailer",
    "toilet tissue, toilet paper, bathroom tissue", "organ", "dishrag, dishcloth", "island", "keyboard",
    "trench", "basket, basketball hoop, hoop", "steering wheel, wheel", "pitcher, ewer", "goal",
    "bread, breadstuff, staff of life", "beds", "wood", "file cabinet", "newspaper, paper", "motorboat",
    "rope", "guitar", "rubble", "scarf", "barrels", "cap", "leaves", "control tower", "dashboard",
    "bandstand", "lectern", "switch, electric switch, electrical switch",
    "baseboard, mopboard, skirting board", "shower room", "smoke", "faucet, spigot", "bulldozer", "saucepan",
    "shops", "meter", "crevasse", "gear", "candelabrum, candelabra", "sofa bed", "tunnel", "pallet",
    "wire, conducting wire", "kettle, boiler", "bidet",
    "baby buggy, baby carriage, carriage, perambulator, pram, stroller, go-cart, pushchair, pusher",
    "music stand", "pipe, tube", "cup", "parking meter", "ice hockey rink", "shelter", "weeds", "temple",
    "patty, cake", "ski slope", "panel", "wallet", "wheel", "towel rack, towel horse", "roundabout",
    "canister, cannister, tin", "rod", "soap dispenser", "bell", "canvas",
    "box office, ticket office, ticket booth", "teacup", "trellis", "workbench", "valley, vale", "toaster",
    "knife", "podium", "ramp", "tumble dryer", "fireplug, fire hydrant, plug",
    "gym shoe, sneaker, tennis shoe", "lab bench", "equipment", "rocky formation", "plastic", "calendar",
    "caravan", "check-in-desk", "ticket counter", "brush", "mill", "covered bridge", "bowling alley",
    "hanger", "excavator", "trestle", "revolving door", "blast furnace", "scale, weighing machine",
    "projector", "soap", "locker", "tractor", "stretcher", "frame", "grating", "alembic",
    "candle, taper, wax light", "barrier", "cardboard", "cave", "puddle", "tarp", "price tag", "watchtower",
    "meters", "light bulb, lightbulb, bulb, incandescent lamp, electric light, electric-light bulb",
    "tracks", "hair dryer", "skirt", "viaduct", "paper towel", "coat", "sheet",
    "fire extinguisher, extinguisher, asphyxiator", "water wheel", "pottery, clayware", "magazine rack",
    "teapot", "microphone, mike", "support", "forklift", "canyon", "cash register, register",
    "leaf, leafage, foliage", "remote control, remote", "soap dish", "windshield, windscreen", "cat",
    "cue, cue stick, pool cue, pool stick", "vent, venthole, vent-hole, blowhole", "videos", "shovel",
    "eaves", "antenna, aerial, transmitting aerial", "shipyard", "hen, biddy", "traffic cone",
    "washing machines", "truck crane", "cds", "niche", "scoreboard", "briefcase", "boot", "sweater, jumper",
    "hay", "pack", "bottle rack", "glacier", "pergola", "building materials", "television camera",
    "first floor", "rifle", "tennis table", "stadium", "safety belt", "cover", "dish rack", "synthesizer",
    "pumpkin", "gutter", "fruit stand", "ice floe, floe", "handle, grip, handgrip, hold", "wheelchair",
    "mousepad, mouse mat", "diploma", "fairground ride", "radio", "hotplate", "junk", "wheelbarrow",
    "stream", "toll plaza", "punching bag", "trough", "throne", "chair desk", "weighbridge", "extractor fan",
    "hanging clothes", "dish, dish aerial, dish antenna, saucer", "alarm clock, alarm", "ski lift", "chain",
    "garage", "mechanical shovel", "wine rack", "tramway", "treadmill", "menu", "block", "well",
    "witness stand", "branch", "duck", "casserole", "frying pan", "desk organizer", "mast",
    "spectacles, specs, eyeglasses, glasses", "service elevator", "dollhouse", "hammock", "clothes hanging",
    "photocopier", "notepad", "golf cart", "footpath", "cross", "baptismal font", "boiler", "skip",
    "rotisserie", "tables", "water mill", "helmet", "cover curtain", "brick", "table runner", "ashtray",
    "street box", "stick", "hangers", "cells", "urinal", "centerpiece", "portable fridge", "dvds",
    "golf club", "skirting board", "water cooler", "clipboard", "camera, photographic camera", "pigeonhole",
    "chips", "food processor", "post box", "lid", "drum", "blender", "cave entrance", "dental chair",
    "obelisk", "canoe", "mobile", "monitors", "pool ball", "cue rack", "baggage carts", "shore", "fork",
    "paper filer", "bicycle rack", "coat rack", "garland", "sports bag", "fish tank", "towel dispenser",
    "carriage", "brochure", "plaque", "stringer", "iron", "spoon", "flag pole", "toilet brush", "book stand",
    "water faucet, water tap, tap, hydrant", "ticket office", "broom", "dvd", "ice bucket",
    "carapace, shell, cuticle, shield", "tureen", "folders", "chess", "root", "sewing machine", "model",
    "pen", "violin", "sweatshirt", "recycling materials", "mitten", "chopping board, cutting board", "mask",
    "log", "mouse, computer mouse", "grill", "hole", "target", "trash bag", "chalk", "sticks", "balloon",
    "score", "hair spray", "roll", "runner", "engine", "inflatable glove", "games", "pallets", "baskets",
    "coop", "dvd player", "rocking horse", "buckets", "bread rolls", "shawl", "watering can", "spotlights",
    "post-it", "bowls", "security camera", "runner cloth", "lock", "alarm, warning device, alarm system",
    "side", "roulette", "bone", "cutlery", "pool balls", "wheels", "spice rack", "plant pots", "towel ring",
    "bread box", "video", "funfair", "breads", "tripod", "ironing board", "skimmer", "hollow",
    "scratching post", "tricycle", "file box", "mountain pass", "tombstones", "cooker", "card game, cards",
    "golf bag", "towel paper", "chaise lounge", "sun", "toilet paper holder", "rake", "key",
    "umbrella stand", "dartboard", "transformer", "fireplace utensils", "sweatshirts",
    "cellular telephone, cellular phone, cellphone, cell, mobile phone", "tallboy", "stapler", "sauna",
    "test tube", "palette", "shopping carts", "tools", "push button, push, button", "star", "roof rack",
    "barbed wire", "spray", "ear", "sponge", "racket", "tins", "eyeglasses", "file", "scarfs", "sugar bowl",
    "flip flop", "headstones", "laptop bag", "leash", "climbing frame", "suit hanger", "floor spotlight",
    "plate rack", "sewer", "hard drive", "sprinkler", "tools box", "necklace", "bulbs", "steel industry",
    "club", "jack", "door bars", "control panel, instrument panel, control board, board, panel", "hairbrush",
    "napkin holder", "office", "smoke detector", "utensils", "apron", "scissors", "terminal", "grinder",
    "entry phone", "newspaper stand", "pepper shaker", "onions",
    "central processing unit, cpu, c p u , central processor, processor, mainframe", "tape", "bat",
    "coaster", "calculator", "potatoes", "luggage rack", "salt", "street number", "viewpoint", "sword", "cd",
    "rowing machine", "plug", "andiron, firedog, dog, dog-iron", "pepper", "tongs", "bonfire", "dog dish",
    "belt", "dumbbells", "videocassette recorder, vcr", "hook", "envelopes", "shower faucet", "watch",
    "padlock", "swimming pool ladder", "spanners", "gravy boat", "notice board", "trash bags", "fire alarm",
    "ladle", "stethoscope", "rocket", "funnel", "bowling pins", "valve", "thermometer", "cups", "spice jar",
    "night light", "soaps", "games table", "slotted spoon", "reel", "scourer", "sleeping robe", "desk mat",
    "dumbbell", "hammer", "tie", "typewriter", "shaker", "cheese dish", "sea star", "racquet",
    "butane gas cylinder", "paper weight", "shaving brush", "sunglasses", "gear shift", "towel rail",
    "adding machine, totalizer, totaliser",
)

#: Pascal Context, 59 most frequent classes (alphabetical by the 459-class names; "table" is "diningtable").
#: Source: https://github.com/MendelXu/SAN/blob/main/san/data/datasets/register_pcontext.py
#: (``PCONTEXT_SEM_SEG_CATEGORIES``).
PC_59: tuple[str, ...] = (
    "aeroplane", "bag", "bed", "bedclothes", "bench", "bicycle", "bird", "boat", "book", "bottle",
    "building", "bus", "cabinet", "car", "cat", "ceiling", "chair", "cloth", "computer", "cow", "cup",
    "curtain", "dog", "door", "fence", "floor", "flower", "food", "grass", "ground", "horse", "keyboard",
    "light", "motorbike", "mountain", "mouse", "person", "plate", "platform", "pottedplant", "road", "rock",
    "sheep", "shelves", "sidewalk", "sign", "sky", "snow", "sofa", "diningtable", "track", "train", "tree",
    "truck", "tvmonitor", "wall", "water", "window", "wood",
)

#: Pascal Context full, 459 classes; label value = ``LabelMap`` value - 1 of the official ``trainval/*.mat``.
#: Source: https://github.com/MendelXu/SAN/blob/main/san/data/datasets/register_pcontext.py
#: (``PCONTEXT_FULL_SEM_SEG_CATEGORIES``, the order of the official ``labels.txt``).
PC_459: tuple[str, ...] = (
    "accordion", "aeroplane", "air conditioner", "antenna", "artillery", "ashtray", "atrium",
    "baby carriage", "bag", "ball", "balloon", "bamboo weaving", "barrel", "baseball bat", "basket",
    "basketball backboard", "bathtub", "bed", "bedclothes", "beer", "bell", "bench", "bicycle", "binoculars",
    "bird", "bird cage", "bird feeder", "bird nest", "blackboard", "board", "boat", "bone", "book", "bottle",
    "bottle opener", "bowl", "box", "bracelet", "brick", "bridge", "broom", "brush", "bucket", "building",
    "bus", "cabinet", "cabinet door", "cage", "cake", "calculator", "calendar", "camel", "camera",
    "camera lens", "can", "candle", "candle holder", "cap", "car", "card", "cart", "case",
    "casette recorder", "cash register", "cat", "cd", "cd player", "ceiling", "cell phone", "cello", "chain",
    "chair", "chessboard", "chicken", "chopstick", "clip", "clippers", "clock", "closet", "cloth",
    "clothes tree", "coffee", "coffee machine", "comb", "computer", "concrete", "cone", "container",
    "control booth", "controller", "cooker", "copying machine", "coral", "cork", "corkscrew", "counter",
    "court", "cow", "crabstick", "crane", "crate", "cross", "crutch", "cup", "curtain", "cushion",
    "cutting board", "dais", "disc", "disc case", "dishwasher", "dock", "dog", "dolphin", "door", "drainer",
    "dray", "drink dispenser", "drinking machine", "drop", "drug", "drum", "drum kit", "duck", "dumbbell",
    "earphone", "earrings", "egg", "electric fan", "electric iron", "electric pot", "electric saw",
    "electronic keyboard", "engine", "envelope", "equipment", "escalator", "exhibition booth",
    "extinguisher", "eyeglass", "fan", "faucet", "fax machine", "fence", "ferris wheel", "fire extinguisher",
    "fire hydrant", "fire place", "fish", "fish tank", "fishbowl", "fishing net", "fishing pole", "flag",
    "flagstaff", "flame", "flashlight", "floor", "flower", "fly", "foam", "food", "footbridge", "forceps",
    "fork", "forklift", "fountain", "fox", "frame", "fridge", "frog", "fruit", "funnel", "furnace",
    "game controller", "game machine", "gas cylinder", "gas hood", "gas stove", "gift box", "glass",
    "glass marble", "globe", "glove", "goal", "grandstand", "grass", "gravestone", "ground", "guardrail",
    "guitar", "gun", "hammer", "hand cart", "handle", "handrail", "hanger", "hard disk drive", "hat", "hay",
    "headphone", "heater", "helicopter", "helmet", "holder", "hook", "horse", "horse-drawn carriage",
    "hot-air balloon", "hydrovalve", "ice", "inflator pump", "ipod", "iron", "ironing board", "jar", "kart",
    "kettle", "key", "keyboard", "kitchen range", "kite", "knife", "knife block", "ladder", "ladder truck",
    "ladle", "laptop", "leaves", "lid", "life buoy", "light", "light bulb", "lighter", "line", "lion",
    "lobster", "lock", "machine", "mailbox", "mannequin", "map", "mask", "mat", "match book", "mattress",
    "menu", "metal", "meter box", "microphone", "microwave", "mirror", "missile", "model", "money", "monkey",
    "mop", "motorbike", "mountain", "mouse", "mouse pad", "musical instrument", "napkin", "net", "newspaper",
    "oar", "ornament", "outlet", "oven", "oxygen bottle", "pack", "pan", "paper", "paper box",
    "paper cutter", "parachute", "parasol", "parterre", "patio", "pelage", "pen", "pen container", "pencil",
    "person", "photo", "piano", "picture", "pig", "pillar", "pillow", "pipe", "pitcher", "plant", "plastic",
    "plate", "platform", "player", "playground", "pliers", "plume", "poker", "poker chip", "pole",
    "pool table", "postcard", "poster", "pot", "pottedplant", "printer", "projector", "pumpkin", "rabbit",
    "racket", "radiator", "radio", "rail", "rake", "ramp", "range hood", "receiver", "recorder",
    "recreational machines", "remote control", "road", "robot", "rock", "rocket", "rocking horse", "rope",
    "rug", "ruler", "runway", "saddle", "sand", "saw", "scale", "scanner", "scissors", "scoop", "screen",
    "screwdriver", "sculpture", "scythe", "sewer", "sewing machine", "shed", "sheep", "shell", "shelves",
    "shoe", "shopping cart", "shovel", "sidecar", "sidewalk", "sign", "signal light", "sink", "skateboard",
    "ski", "sky", "sled", "slippers", "smoke", "snail", "snake", "snow", "snowmobiles", "sofa", "spanner",
    "spatula", "speaker", "speed bump", "spice container", "spoon", "sprayer", "squirrel", "stage", "stair",
    "stapler", "stick", "sticky note", "stone", "stool", "stove", "straw", "stretcher", "sun", "sunglass",
    "sunshade", "surveillance camera", "swan", "sweeper", "swim ring", "swimming pool", "swing", "switch",
    "table", "tableware", "tank", "tap", "tape", "tarp", "telephone", "telephone booth", "tent", "tire",
    "toaster", "toilet", "tong", "tool", "toothbrush", "towel", "toy", "toy car", "track", "train",
    "trampoline", "trash bin", "tray", "tree", "tricycle", "tripod", "trophy", "truck", "tube", "turtle",
    "tvmonitor", "tweezers", "typewriter", "umbrella", "unknown", "vacuum cleaner", "vending machine",
    "video camera", "video game console", "video player", "video tape", "violin", "wakeboard", "wall",
    "wallet", "wardrobe", "washing machine", "watch", "water", "water dispenser", "water pipe",
    "water skate board", "watermelon", "whale", "wharf", "wheel", "wheelchair", "window", "window blinds",
    "wineglass", "wire", "wood", "wool",
)

# fmt: on

#: Pascal VOC 2012, 20 object classes (background is ignored), VOC class id - 1.
#: Source: https://github.com/MendelXu/SAN/blob/main/san/data/datasets/register_voc.py (``CLASS_NAMES``).
VOC_20: tuple[str, ...] = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tv",
)

#: Cityscapes, the 19 evaluated classes in train-id order.
#: Source: https://github.com/mcordts/cityscapesScripts/blob/master/cityscapesscripts/helpers/labels.py
#: (labels with ``trainId`` 0..18) and mmsegmentation ``mmseg/datasets/cityscapes.py`` (``METAINFO["classes"]``).
CITYSCAPES_19: tuple[str, ...] = (
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
)

#: The 14 prompt templates of ViLD (Gu et al., 2022), as used by SAN ("vild" set).
#: Source: https://github.com/MendelXu/SAN/blob/main/san/model/clip_utils/utils.py (``PREDEFINED_TEMPLATES["vild"]``).
VILD_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "This is a photo of a {}",
    "There is a {} in the scene",
    "There is the {} in the scene",
    "a photo of a {} in the scene",
    "a photo of a small {}.",
    "a photo of a medium {}.",
    "a photo of a large {}.",
    "This is a photo of a small {}.",
    "This is a photo of a medium {}.",
    "This is a photo of a large {}.",
    "There is a small {} in the scene.",
    "There is a medium {} in the scene.",
    "There is a large {} in the scene.",
)

#: The 80 ImageNet prompt templates of CLIP (Radford et al., 2021).
#: Source: https://github.com/openai/CLIP/blob/main/notebooks/Prompt_Engineering_for_ImageNet.ipynb, as listed in
#: https://github.com/MendelXu/SAN/blob/main/san/model/clip_utils/utils.py (``PREDEFINED_TEMPLATES["imagenet"]``).
IMAGENET_TEMPLATES: tuple[str, ...] = (
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a plushie {}.",
    "a photo of the nice {}.",
    "a photo of the small {}.",
    "a photo of the weird {}.",
    "the cartoon {}.",
    "art of the {}.",
    "a drawing of the {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "the plushie {}.",
    "a dark photo of a {}.",
    "itap of a {}.",
    "graffiti of the {}.",
    "a toy {}.",
    "itap of my {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "a tattoo of the {}.",
)

#: Benchmark name -> class names (label value i is the i-th name).
VOCABULARIES: dict[str, tuple[str, ...]] = {
    "coco_stuff": COCO_STUFF_171,
    "ade150": ADE_150,
    "ade847": ADE_847,
    "pc59": PC_59,
    "pc459": PC_459,
    "voc20": VOC_20,
    "cityscapes": CITYSCAPES_19,
}

#: Template-set name -> prompt templates, each with one ``{}`` placeholder for the class name.
#: ``"photo"`` is the single template the toy CLIP was pretrained with (scripts/pretrain_toy_clip.py).
TEMPLATES: dict[str, tuple[str, ...]] = {
    "vild": VILD_TEMPLATES,
    "imagenet": IMAGENET_TEMPLATES,
    "photo": ("a photo of a {}.",),
}


def get_vocabulary(name: str) -> list[str]:
    """Returns the class names of a benchmark, in label order.

    Args:
        name: One of the keys of :data:`VOCABULARIES` (``coco_stuff``, ``ade150``, ``ade847``,
            ``pc59``, ``pc459``, ``voc20``, ``cityscapes``).

    Raises:
        KeyError: For an unknown name; the message lists the known ones.
    """
    if name not in VOCABULARIES:
        raise KeyError(f"unknown vocabulary {name!r}; known: {sorted(VOCABULARIES)}")
    return list(VOCABULARIES[name])


def get_templates(name: str = "vild") -> list[str]:
    """Returns a prompt-template set (``"vild"``: 14, ``"imagenet"``: 80, ``"photo"``: 1 template).

    Raises:
        KeyError: For an unknown name; the message lists the known ones.
    """
    if name not in TEMPLATES:
        raise KeyError(f"unknown template set {name!r}; known: {sorted(TEMPLATES)}")
    return list(TEMPLATES[name])


def split_synonyms(class_name: str) -> list[str]:
    """Splits a class name with comma-separated synonyms (``"sofa, couch"`` -> ``["sofa", "couch"]``).

    Empty parts are dropped; a name without commas gives a one-element list.
    """
    return [part.strip() for part in class_name.split(",") if part.strip()]
